"""Datasets, long-tail profiles and class statistics."""
