"""Training: configuration, the loop with exact resume, metrics, logs and plots."""
