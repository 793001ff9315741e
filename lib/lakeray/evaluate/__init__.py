"""Evaluation: task metrics, calibration and a fairness audit by sensitive slice."""
