"""Backbones returning C2..C5."""
