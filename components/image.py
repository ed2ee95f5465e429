"""The one place the component image reference lives.

Every component runs in the project's own image (see Dockerfile). `compile.py --image` swaps the
reference at compile time; nothing reads it from the environment.
"""
from importlib.metadata import version

from kfp import dsl

REPOSITORY = "ghcr.io/tabular-mlops/tabular-mlops"
DEFAULT_IMAGE = f"{REPOSITORY}:{version('tabular-mlops')}"


def component(func=None, *, image: str = DEFAULT_IMAGE):
    """A lightweight component on the project image; nothing is pip-installed at run time."""
    if func is None:
        return lambda f: component(f, image=image)
    return dsl.component(func, base_image=image, install_kfp_package=False)


def with_image(comp, image: str):
    """The same component on another image."""
    return component(comp.python_func, image=image)
