"""The deploy step: logic.py and kube.py are plain Python; component.py is its KFP wrapper (imports kfp).

TARGETS is the one list of deployment targets (the config, the CLI and the step check against it).
"""

TARGETS = ("canary", "rolling", "local", "none")
