"""Live performance: predictions joined with their outcomes, per model version, and the verdict of the live gates."""
