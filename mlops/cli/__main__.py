"""`python -m mlops.cli`: the `mlops` command run as a module (how the demo starts its servers)."""
import sys

from mlops.cli import main

sys.exit(main())
