"""Infers: networks, inference backends (onnxruntime, torch) and shipped weights.

Knows nothing of DICOM: it takes arrays with their geometry and returns label maps and
probabilities."""
