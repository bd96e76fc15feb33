"""Learns: synthetic phantoms, datasets (VerSe, CTSpine1K), training and evaluation.

The runtime (pipeline, models, dicom_listener) never imports this package."""
