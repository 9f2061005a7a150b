"""Detector architectures."""
