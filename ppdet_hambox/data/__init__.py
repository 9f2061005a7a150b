"""Datasets, transforms and readers."""
