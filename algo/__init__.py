"""Training: surrogate-gradient, quantisation-aware SNN training that exports bundles."""
