"""trigger_retraining: submit one training run when the drift check says retraining is due."""
