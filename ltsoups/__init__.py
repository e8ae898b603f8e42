"""LT-Soups: subsampled model soups for long-tailed fine-tuning of foundation models."""

__version__ = "0.1.0"
