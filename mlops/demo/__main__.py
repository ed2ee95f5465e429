"""The pipeline process of `mlops demo` (`python -m mlops.demo RESULT`): runs the pipeline call pickled on stdin."""
import sys

from mlops.demo.processes import _pipeline_process

_pipeline_process(sys.argv[1])
