"""Study completion: a study is complete after a quiet period without new instances.

Each instance sets its study's ``due_at`` (arrival + quiet period for the calling AE title) in
the index, so timers survive restarts. The :class:`CompletionTicker` completes due studies:
one job per changed routable series; a late instance reopens the study and its next
completion supersedes the earlier job.
"""

from __future__ import annotations

import logging
import threading
import time

from dicom_listener.records import SeriesInfo
from dicom_listener.routing import SeriesRouter
from dicom_listener.store import Store

log = logging.getLogger(__name__)


class StudyAssembler:
    def __init__(self, store: Store, router: SeriesRouter, model_version: str) -> None:
        self.store = store
        self.router = router
        self.model_version = model_version

    def complete_due(self, now: float | None = None) -> list[int]:
        """Complete every study past its quiet period; the ids of the jobs queued."""
        now = time.time() if now is None else now
        queued: list[int] = []
        for study in self.store.due_studies(now):
            changed = [s for s in self.store.series_of_study(study.study_uid) if s.changed]
            decisions = {s.series_uid: self._route(s) for s in changed}
            job_ids = self.store.complete_study(study, decisions, self.model_version, now)
            rejected = sum(reason is not None for reason in decisions.values())
            log.info(
                "study %s complete: %d job(s) queued, %d series not routed",
                study.study_uid,
                len(job_ids),
                rejected,
                extra={"study_uid": study.study_uid},
            )
            queued.extend(job_ids)
        return queued

    def _route(self, series: SeriesInfo) -> str | None:
        """The router's decision; a router failure rejects this series only, with the reason."""
        try:
            return self.router(series)
        except Exception as exc:
            log.exception("routing series %s failed", series.series_uid)
            return f"routing failed: {type(exc).__name__}: {exc}"


class CompletionTicker(threading.Thread):
    """Background thread that calls :meth:`StudyAssembler.complete_due` every ``interval_s``."""

    def __init__(self, assembler: StudyAssembler, interval_s: float) -> None:
        super().__init__(name="study-completion", daemon=True)
        self.assembler = assembler
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.assembler.complete_due()
            except Exception:
                log.exception("study completion check failed; retrying next tick")

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)
