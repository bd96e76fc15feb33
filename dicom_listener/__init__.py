"""Receives: the DICOM Storage SCP, the durable spool, study completion and the job store.

Knows nothing of models."""
