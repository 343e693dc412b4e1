"""Loaders that return NumPy arrays: real data shipped by packages, and synthetic generators."""
