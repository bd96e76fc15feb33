"""Synthetic spine phantoms with exact ground truth (training, tests, demo; never the runtime)."""
