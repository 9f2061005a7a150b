"""Necks building P2..P7."""
