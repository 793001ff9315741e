"""Monitoring: the training-time baseline profile and the drift statistics against it."""
