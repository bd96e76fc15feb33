"""The durable spool: received files stored bit-exactly, fsynced before they are acknowledged.

A file is written to ``<root>/.tmp/<random>.part``, fsynced, renamed into
``<root>/<study>/<series>/<sop>.dcm`` and the directory is fsynced, so after a crash a
file under its final name is complete and a ``.part`` file is an unfinished transfer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from spinescreen.durable import fsync_directory
from spinescreen.errors import StoreError

log = logging.getLogger(__name__)

TEMP_DIR = ".tmp"
SUFFIX = ".dcm"
MAX_TRACKED_DIRS = 1024
_SAFE_UID = re.compile(r"^[0-9.]{1,64}$")


def safe_name(uid: str) -> str:
    """``uid`` when it is a plain DICOM UID, otherwise a stable hash (no path tricks)."""
    if _SAFE_UID.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha1(uid.encode("utf-8", "replace")).hexdigest()


class Spool:
    """Files under ``root``, written atomically and durably."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp = root / TEMP_DIR
        self._known_dirs: set[Path] = set()
        self._dir_lock = threading.Lock()
        self._dir_sync = DirectorySync()
        try:
            self.temp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the spool folder {root}: {exc.strerror}") from exc

    def relative_path(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
        return "/".join(
            (safe_name(study_uid), safe_name(series_uid), safe_name(sop_instance_uid) + SUFFIX)
        )

    def write(self, relative: str, data: bytes) -> Path:
        """Store ``data`` under ``relative`` durably; returns the final path."""
        final = self.root / relative
        self._ensure_dir(final.parent)
        part = self.temp / f"{uuid.uuid4().hex}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(part, final)
            self._dir_sync.sync(final.parent)
        except OSError:
            part.unlink(missing_ok=True)
            raise
        return final

    def path(self, relative: str) -> Path:
        return self.root / relative

    def free_mb(self) -> float:
        return shutil.disk_usage(self.root).free / 2**20

    def clean_temp(self) -> int:
        """Delete unfinished transfers (``.part`` files); how many."""
        removed = 0
        for part in self.temp.glob("*.part"):
            part.unlink(missing_ok=True)
            removed += 1
        if removed:
            fsync_directory(self.temp)
        return removed

    def files(self) -> Iterator[str]:
        """Relative paths of all stored files."""
        for path in self.root.glob(f"*/*/*{SUFFIX}"):
            yield path.relative_to(self.root).as_posix()

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        with self._dir_lock:
            missing = []
            probe = directory
            while not probe.exists():
                missing.append(probe)
                probe = probe.parent
            for new in reversed(missing):
                new.mkdir(exist_ok=True)
                fsync_directory(new.parent)
            self._known_dirs.add(directory)


class DirectorySync:
    """Shared directory fsyncs: renames into one folder from concurrent associations.

    A caller takes a ticket after its rename; a leader fsyncs the folder for every ticket
    issued before the fsync started, so each caller returns only once its own rename is
    durable, and concurrent callers share one fsync.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._leaders: dict[Path, threading.Lock] = {}
        self._issued: dict[Path, int] = {}
        self._synced: dict[Path, int] = {}

    def sync(self, directory: Path) -> None:
        with self._mutex:
            ticket = self._issued[directory] = self._issued.get(directory, 0) + 1
            leader = self._leaders.setdefault(directory, threading.Lock())
        with leader:
            with self._mutex:
                if self._synced.get(directory, 0) >= ticket:
                    return
                target = self._issued.get(directory, ticket)
            fsync_directory(directory)
            with self._mutex:
                self._synced[directory] = target
                if len(self._issued) > MAX_TRACKED_DIRS:
                    self._forget_idle()

    def _forget_idle(self) -> None:
        """Drop folders with no rename waiting (called with the mutex held)."""
        for directory in list(self._issued):
            idle = self._synced.get(directory, 0) >= self._issued[directory]
            if idle and not self._leaders[directory].locked():
                del self._issued[directory], self._leaders[directory]
                self._synced.pop(directory, None)
