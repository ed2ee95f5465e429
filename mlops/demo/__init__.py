"""`mlops demo`: the whole loop on one machine with the embedded defaults, in one command."""
from mlops.demo.loop import main

__all__ = ["main"]
