"""Closed-form bounds and theory quantities (lethal dose, Gaussian separation, ...)."""
