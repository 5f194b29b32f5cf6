"""Accuracy benchmarks: detection, naming, calibration and clustering on labelled photos."""
