"""Command line and local orchestration for the tabular MLOps pipelines."""
