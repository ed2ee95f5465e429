"""The deploy step: logic.py and kube.py are plain Python; component.py is its KFP wrapper (imports kfp)."""
