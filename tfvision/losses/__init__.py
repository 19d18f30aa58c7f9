"""Training losses of the dense-prediction models."""
