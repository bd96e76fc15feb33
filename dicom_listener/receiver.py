"""The C-STORE handler: parse the UIDs, spool the bytes durably, index, then acknowledge.

Status 0x0000 is returned only after the file is fsynced and renamed and its index row is
committed. 0xA700: free disk under the watermark. 0xC210: the dataset cannot be understood
(garbage, truncated, missing UIDs). 0xC211: anything unexpected (logged with its traceback).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
import time
from collections import Counter
from typing import Any

from dicom_listener.instance import is_image_storage, read_header
from dicom_listener.records import StoredInstance
from dicom_listener.settings import ListenerSettings
from dicom_listener.spool import Spool
from dicom_listener.store import Store
from spinescreen.errors import InputRejected

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210
UNEXPECTED_ERROR = 0xC211


class Receiver:
    def __init__(self, config: ListenerSettings, spool: Spool, store: Store) -> None:
        self.config = config
        self.spool = spool
        self.store = store
        self._counts: dict[int, Counter[int]] = {}
        self._counts_lock = threading.Lock()

    def handle_store(self, event: Any) -> int:
        """EVT_C_STORE handler; never raises."""
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        affected = str(getattr(event.request, "AffectedSOPInstanceUID", ""))
        context = {"calling_ae": calling_ae, "sop_instance_uid": affected}
        status = self._status(event, calling_ae, affected, context)
        self._count(event.assoc, status)
        return status

    def association_summary(self, assoc: Any) -> Counter[int]:
        """Statuses answered on ``assoc`` so far (forgotten after this call)."""
        with self._counts_lock:
            return self._counts.pop(id(assoc), Counter())

    def _count(self, assoc: Any, status: int) -> None:
        with self._counts_lock:
            self._counts.setdefault(id(assoc), Counter())[status] += 1

    def _status(self, event: Any, calling_ae: str, affected: str, context: dict[str, str]) -> int:
        try:
            return self._store(event, calling_ae)
        except InputRejected as exc:
            log.warning(
                "C-STORE of %s from %s refused (0xC210): %s",
                affected,
                calling_ae,
                exc,
                extra=context,
            )
            return CANNOT_UNDERSTAND
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.exception(
                    "C-STORE of %s from %s failed (0xC211)", affected, calling_ae, extra=context
                )
                return UNEXPECTED_ERROR
            log.error("C-STORE of %s refused (0xA700): disk full: %s", affected, exc, extra=context)
            return OUT_OF_RESOURCES
        except Exception:
            log.exception(
                "C-STORE of %s from %s failed unexpectedly (0xC211)",
                affected,
                calling_ae,
                extra=context,
            )
            return UNEXPECTED_ERROR

    def _store(self, event: Any, calling_ae: str) -> int:
        free = self.spool.free_mb()
        if free < self.config.min_free_disk_mb:
            log.error(
                "C-STORE refused (0xA700): free disk %.0f MB under min_free_disk_mb %d",
                free,
                self.config.min_free_disk_mb,
            )
            return OUT_OF_RESOURCES
        file_bytes: bytes = event.encoded_dataset(include_meta=True)
        header = read_header(file_bytes, str(event.context.transfer_syntax))
        if header.sop_instance_uid != str(event.request.AffectedSOPInstanceUID):
            log.warning(
                "dataset SOP Instance UID %s differs from the C-STORE request's %s; "
                "indexed under the dataset's",
                header.sop_instance_uid,
                event.request.AffectedSOPInstanceUID,
            )
        if not self.config.store_non_image and not is_image_storage(header.sop_class_uid):
            log.info("non-image instance %s acknowledged and dropped", header.sop_instance_uid)
            return SUCCESS
        digest = hashlib.sha256(file_bytes).hexdigest()
        relative = self.spool.relative_path(
            header.study_uid, header.series_uid, header.sop_instance_uid
        )
        # A file under its final name may be a duplicate; without one the instance is new.
        if (
            self.spool.path(relative).exists()
            and self.store.instance_digest(header.sop_instance_uid) == digest
        ):
            log.debug("duplicate instance %s: already stored", header.sop_instance_uid)
            return SUCCESS
        self.spool.write(relative, file_bytes)
        stored = StoredInstance(
            header=header,
            path=relative,
            size=len(file_bytes),
            sha256=digest,
            calling_ae=calling_ae,
            received_at=time.time(),
            quiet_period_s=self.config.quiet_period_for(calling_ae),
        )
        outcome = self.store.record_instance(stored)
        log.debug("instance %s %s", header.sop_instance_uid, outcome.value)
        return SUCCESS
