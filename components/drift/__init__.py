"""check_drift: the production model's inference log against its reference profile (PSI, KS), decide retraining.

DriftError is the step's one error, raised by its logic and its log reading alike.
"""


class DriftError(ValueError):
    """The check cannot run: missing log, profile or production version, or a malformed config."""
