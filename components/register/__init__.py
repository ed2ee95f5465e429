"""The register step: logic.py is plain Python; component.py is its KFP wrapper (imports kfp)."""
