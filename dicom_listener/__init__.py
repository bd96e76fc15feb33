"""Receives and delivers: the Storage SCP, the durable spool, study completion, the job store
and the outbox that sends results back (C-STORE SCU, folder).

Knows nothing of models. The public surface::

    listener = open_listener(settings.listener, settings.store)   # or Listener(...)
    listener.start()            # recovery, then the SCP and the completion ticker
    job = listener.queue.claim("worker-1", lease_s=300)
    ...
    listener.stop()

    outbox = Outbox(listener.store, settings.delivery, settings.data_dir)
    worker = DeliveryWorker(outbox, settings.delivery, settings.listener.ae_title)
    worker.start(); outbox.submit(study_uid, [sr_path, seg_path]); worker.wake()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spinescreen.lazy import lazy_exports

if TYPE_CHECKING:
    from dicom_listener.assembly import CompletionTicker, StudyAssembler
    from dicom_listener.delivery import DeliveryWorker
    from dicom_listener.instance import is_image_storage, read_header
    from dicom_listener.jobs import Job, JobQueue, JobState, backoff_s
    from dicom_listener.outbox import Delivery, DeliveryState, Outbox
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

# Loaded on first use: importing ``dicom_listener.settings`` (the configuration does, for every
# command) must not pull in pynetdicom, pydicom and SQLAlchemy.
_LAZY = {
    "AssociationPolicy": "dicom_listener.policy",
    "AssociationRequest": "dicom_listener.policy",
    "CompletionTicker": "dicom_listener.assembly",
    "Delivery": "dicom_listener.outbox",
    "DeliveryState": "dicom_listener.outbox",
    "DeliveryWorker": "dicom_listener.delivery",
    "IndexOutcome": "dicom_listener.records",
    "InstanceHeader": "dicom_listener.records",
    "InstanceInfo": "dicom_listener.records",
    "Job": "dicom_listener.jobs",
    "JobQueue": "dicom_listener.jobs",
    "JobState": "dicom_listener.jobs",
    "Listener": "dicom_listener.scp",
    "Outbox": "dicom_listener.outbox",
    "RecoveryReport": "dicom_listener.recovery",
    "Refusal": "dicom_listener.policy",
    "SeriesInfo": "dicom_listener.records",
    "SeriesRouter": "dicom_listener.routing",
    "Spool": "dicom_listener.spool",
    "SqlStore": "dicom_listener.store",
    "Store": "dicom_listener.store",
    "StoredInstance": "dicom_listener.records",
    "StudyAssembler": "dicom_listener.assembly",
    "StudyInfo": "dicom_listener.records",
    "backoff_s": "dicom_listener.jobs",
    "build_ssl_context": "dicom_listener.scp",
    "default_router": "dicom_listener.routing",
    "is_image_storage": "dicom_listener.instance",
    "open_listener": "dicom_listener.scp",
    "read_header": "dicom_listener.instance",
    "recover": "dicom_listener.recovery",
}

__all__ = [
    "AssociationPolicy",
    "AssociationRequest",
    "CompletionTicker",
    "Delivery",
    "DeliveryState",
    "DeliveryWorker",
    "IndexOutcome",
    "InstanceHeader",
    "InstanceInfo",
    "Job",
    "JobQueue",
    "JobState",
    "Listener",
    "Outbox",
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


__getattr__ = lazy_exports(__name__, _LAZY)
