"""Trainable models as pure fit / predict / loss functions."""
