"""check_drift: the production model's inference log against its reference profile (PSI, KS), decide retraining."""
