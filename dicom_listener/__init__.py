"""Receives: the DICOM Storage SCP, the durable spool, study completion and the job store.

Knows nothing of models. The public surface::

    listener = open_listener(settings.listener, settings.store)   # or Listener(...)
    listener.start()            # recovery, then the SCP and the completion ticker
    job = listener.queue.claim("worker-1", lease_s=300)
    ...
    listener.stop()
"""

from dicom_listener.assembly import CompletionTicker, StudyAssembler
from dicom_listener.instance import is_image_storage, read_header
from dicom_listener.jobs import Job, JobQueue, JobState, backoff_s
from dicom_listener.policy import AssociationPolicy, AssociationRequest, Refusal
from dicom_listener.records import (
    IndexOutcome,
    InstanceHeader,
    InstanceInfo,
    SeriesInfo,
    StoredInstance,
    StudyInfo,
)
from dicom_listener.recovery import RecoveryReport, recover
from dicom_listener.routing import SeriesRouter, default_router
from dicom_listener.scp import Listener, build_ssl_context, open_listener
from dicom_listener.spool import Spool
from dicom_listener.store import SqlStore, Store

__all__ = [
    "AssociationPolicy",
    "AssociationRequest",
    "CompletionTicker",
    "IndexOutcome",
    "InstanceHeader",
    "InstanceInfo",
    "Job",
    "JobQueue",
    "JobState",
    "Listener",
    "RecoveryReport",
    "Refusal",
    "SeriesInfo",
    "SeriesRouter",
    "Spool",
    "SqlStore",
    "Store",
    "StoredInstance",
    "StudyAssembler",
    "StudyInfo",
    "backoff_s",
    "build_ssl_context",
    "default_router",
    "is_image_storage",
    "open_listener",
    "read_header",
    "recover",
]
