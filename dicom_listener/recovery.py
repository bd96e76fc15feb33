"""Start-up recovery after a crash (``kill -9``) or power loss.

* ``.part`` files of unfinished transfers are deleted (never acknowledged).
* Files renamed into the spool but not yet indexed (crash between rename and commit) are
  indexed now; their study's quiet period restarts.
* Quiet-period timers need nothing: each study's ``due_at`` is in the index.
* Running jobs whose lease expired return to ``queued``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.filereader import read_file_meta_info

from dicom_listener.instance import read_header
from dicom_listener.jobs import JobQueue
from dicom_listener.records import StoredInstance
from dicom_listener.spool import Spool
from dicom_listener.store import Store
from spinescreen.errors import InputRejected

log = logging.getLogger(__name__)

RECOVERED_AE = "RECOVERED"


@dataclass(frozen=True)
class RecoveryReport:
    temp_files_removed: int
    files_reindexed: int
    unreadable_files: int
    leases_expired: int


def recover(
    spool: Spool, store: Store, queue: JobQueue, quiet_period_for: Callable[[str], float]
) -> RecoveryReport:
    removed = spool.clean_temp()
    indexed = store.indexed_paths()
    reindexed = unreadable = 0
    for relative in spool.files():
        if relative in indexed:
            continue
        if _reindex(spool, store, relative, quiet_period_for(RECOVERED_AE)):
            reindexed += 1
        else:
            unreadable += 1
    expired = queue.requeue_expired()
    report = RecoveryReport(removed, reindexed, unreadable, expired)
    log.info(
        "recovery: %d unfinished transfer(s) removed, %d file(s) re-indexed, "
        "%d unreadable, %d expired lease(s) requeued",
        removed,
        reindexed,
        unreadable,
        expired,
    )
    return report


def _reindex(spool: Spool, store: Store, relative: str, quiet_period_s: float) -> bool:
    path = spool.path(relative)
    try:
        data = path.read_bytes()
        syntax = str(read_file_meta_info(path).TransferSyntaxUID)
        header = read_header(data, syntax)
    except (OSError, InputRejected, AttributeError, ValueError) as exc:
        log.warning("recovery: cannot index spooled file %s: %s", relative, exc)
        return False
    store.record_instance(
        StoredInstance(
            header=header,
            path=relative,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            calling_ae=RECOVERED_AE,
            received_at=time.time(),
            quiet_period_s=quiet_period_s,
        )
    )
    return True
