"""The pipeline steps, one sub-package each, and the shared modules the steps and the model server use."""
