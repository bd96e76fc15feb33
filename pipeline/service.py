"""The analysis side of ``spinescreen serve``: the routing seam for the listener, and workers
that turn queued jobs into findings and DICOM results for the outbox.

The listener knows no models; it calls :class:`StudyRouter` (the YAML routing rules over the
spooled headers) and queues jobs. An :class:`AnalysisWorker` claims a job, builds the volume
from the spooled instances, finds the vertebrae through a :class:`LabelSource` (the shipped
segmenter by default), measures and grades, writes ``findings.json``, the label map, the
overview and the configured DICOM objects under ``<data_dir>/results/<study>/job-<id>/`` and
hands the objects to the outbox. Job failures are recorded with their reason; the queue
retries and dead-letters them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pydicom
from pydicom.dataset import Dataset

from dicom_listener.spool import safe_name
from pipeline.analysis import (
    VOXEL_AXES_DICOM,
    LabelMaps,
    labels_from_file,
    reject_empty,
    segment_with_model,
)
from pipeline.dicom_headers import HeaderFile, summarize_series
from pipeline.outputs.identity import AlgorithmIdentity
from pipeline.outputs.results import write_dicom_results
from pipeline.routing import RoutingDecision, RoutingRules, load_rules, route_study
from pipeline.run import AnalysisOutput, run_analysis, write_analysis
from pipeline.types import Volume
from pipeline.volume import build_volume
from spinescreen.errors import ModelError, SpineScreenError

if TYPE_CHECKING:
    from dicom_listener import Job, JobQueue, SeriesInfo, SqlStore
    from models import Grader, Segmenter
    from models.settings import ModelSettings
    from spinescreen.config import Settings

log = logging.getLogger(__name__)
PIXEL_DATA = 0x7FE00010

Submit = Callable[[str, Sequence[Path], int], object]  # (study UID, files, job id)


class LabelSource(Protocol):
    """Where the vertebra labels of an image come from (the seam for models)."""

    def __call__(self, image: Volume) -> LabelMaps: ...


class ModelLabels:
    """The shipped (or configured) segmenter."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._segmenter: Segmenter | None = None

    def __call__(self, image: Volume) -> LabelMaps:
        if self._segmenter is None:  # load (and checksum) once, not per job
            from models import load_segmenter

            self._segmenter = load_segmenter(self.settings)
        return segment_with_model(image, self.settings, self._segmenter)


class GivenLabels:
    """Label maps given per series: existing segmentations on the series grid (NIfTI).

    For researchers re-measuring existing segmentations, and for the demo's phantoms when no
    trained segmenter is installed (their ground-truth labels, clearly reported as such).
    """

    def __init__(self, by_series: Mapping[str, Path]) -> None:
        self.by_series = dict(by_series)

    def __call__(self, image: Volume) -> LabelMaps:
        path = self.by_series.get(image.series_instance_uid or "")
        if path is None:
            raise ModelError(
                f"no label map was given for series {image.series_instance_uid} and no "
                "segmenter is used; give one or install the segmenter"
            )
        return labels_from_file(image, path)


class StudyRouter:
    """The listener's SeriesRouter: the routing rules over the spooled headers of the study.

    Only the best qualifying series of a study is routed; every other gets its reason.
    """

    def __init__(self, store: SqlStore, spool_dir: Path, rules: RoutingRules | None = None) -> None:
        self.store = store
        self.spool_dir = spool_dir
        self.rules = rules or load_rules()
        # The decisions of the last study routed, keyed by its series and their sizes: the
        # assembler asks once per changed series, the headers are read once per completion.
        self._cache: tuple[object, dict[str, RoutingDecision]] | None = None

    def __call__(self, series: SeriesInfo) -> str | None:
        decision = self._decisions(series.study_uid).get(series.series_uid)
        if decision is None:
            return "the series holds no image instances"
        return None if decision.accepted else decision.reason

    def _decisions(self, study_uid: str) -> dict[str, RoutingDecision]:
        members = self.store.series_of_study(study_uid)
        key = (study_uid, tuple((s.series_uid, s.instance_count) for s in members))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        summaries = []
        for other in members:
            instances = self.store.series_instances(other.series_uid)
            headers = [_header(self.spool_dir / i.path) for i in instances]
            images = [h for h in headers if h is not None and "Rows" in h.header]
            if images:
                summaries.append(summarize_series(images))
        _, decisions = route_study(summaries, self.rules)
        by_series = {d.series_instance_uid: d for d in decisions}
        self._cache = (key, by_series)
        return by_series


def _header(path: Path) -> HeaderFile | None:
    try:
        return HeaderFile(path, pydicom.dcmread(path, stop_before_pixels=True))
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        log.warning("cannot read spooled header %s: %s", path.name, exc)
        return None


@dataclass(frozen=True)
class JobResult:
    folder: Path
    objects: tuple[Path, ...]
    fracture: bool


def analyse_job(
    job: Job,
    settings: Settings,
    store: SqlStore,
    labels: LabelSource,
    grader: Grader | None,
) -> JobResult:
    """Analyse one queued series and write its results; raises SpineScreenError on bad input."""
    spool = settings.store.spool_dir
    datasets = [pydicom.dcmread(spool / i.path) for i in store.series_instances(job.series_uid)]
    image = build_volume(datasets, source=f"series {job.series_uid}")
    maps = labels(image)
    reject_empty(maps)
    name = f"study {job.study_uid}, series {job.series_uid}"
    output = run_analysis(image, maps, grader, name, VOXEL_AXES_DICOM)
    folder = settings.data_dir / "results" / safe_name(job.study_uid) / f"job-{job.id}"
    _, _, overview = write_analysis(output, folder, title=f"SpineScreen: series {job.series_uid}")
    fracture = bool(output.result.fractured_levels)
    if not (fracture or settings.delivery.send_negative_reports):
        return JobResult(folder, (), fracture)
    objects = write_dicom_results(
        output,
        [_without_pixels(ds) for ds in datasets],
        identity_of(output, grader),
        folder / "dicom",
        overview,
        kinds=settings.delivery.send,
        fls_referral_grade=settings.analysis.fls_referral_grade,
        predecessor=previous_report(settings.data_dir, job.study_uid, folder),
    )
    return JobResult(folder, tuple(objects), fracture)


def identity_of(output: AnalysisOutput, grader: Grader | None) -> AlgorithmIdentity:
    """Algorithm identity of the models that ran (their weights' hashes), as the label maps
    record them; a given label map (a file) adds none."""
    models = [
        (made["name"], made["version"], made["sha256"])
        for made in output.maps.origin.values()
        if "sha256" in made
    ]
    if grader is not None:
        models.append((grader.card.name, grader.card.version, grader.card.sha256))
    return AlgorithmIdentity.from_models(models)


def previous_report(data_dir: Path, study_uid: str, current: Path) -> Dataset | None:
    """The newest earlier SR of the study (for Predecessor Documents), headers only."""
    earlier = [
        p for p in (data_dir / "results" / safe_name(study_uid)).glob("job-*/dicom/sr.dcm")
        if p.parent.parent != current
    ]  # fmt: skip
    if not earlier:
        return None
    newest = max(earlier, key=lambda p: p.stat().st_mtime)
    return pydicom.dcmread(newest, stop_before_pixels=True)


def _without_pixels(ds: Dataset) -> Dataset:
    """A header copy for evidence; ``ds`` keeps its pixels."""
    header = Dataset({elem.tag: elem for elem in ds if elem.tag != PIXEL_DATA})
    header.file_meta = ds.file_meta
    return header


class AnalysisWorker(threading.Thread):
    """Claims jobs until stopped; one job at a time, with a heartbeat while it runs."""

    def __init__(
        self,
        worker_id: str,
        settings: Settings,
        store: SqlStore,
        queue: JobQueue,
        submit: Submit,
        labels: LabelSource | None = None,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.settings = settings
        self.store = store
        self.queue = queue
        self.submit = submit
        self.labels = labels or ModelLabels(settings.models)
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self._grader_tried = False
        self._grader_model: Grader | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.queue.claim(self.name, self.settings.store.lease_s)
            except Exception:
                log.exception("cannot claim a job; retrying in %.0f s", 10 * self.poll_s)
                self.stopping.wait(10 * self.poll_s)
                continue
            if job is None:
                self.stopping.wait(self.poll_s)
                continue
            self.process(job)

    def stop(self) -> None:
        """Finish the current job (results are never half-written), then exit."""
        self.stopping.set()

    def process(self, job: Job) -> None:
        beat = _Heartbeat(self.queue, job, self.settings.store.lease_s)
        beat.start()
        try:
            result = analyse_job(job, self.settings, self.store, self.labels, self._grader())
            if not self._still_ours(job):
                return
            if result.objects:
                self.submit(job.study_uid, result.objects, job.id)
            self.queue.complete(job, str(result.folder))
            log.info("job %d done: %s", job.id, result.folder, extra={"job_id": job.id})
        except SpineScreenError as exc:
            log.warning("job %d failed: %s", job.id, exc, extra={"job_id": job.id})
            self._fail(job, str(exc))
        except Exception as exc:
            log.exception("job %d failed unexpectedly", job.id, extra={"job_id": job.id})
            self._fail(job, f"unexpected error: {exc!r}")
        finally:
            beat.stop()

    def _still_ours(self, job: Job) -> bool:
        """Deliver only while this worker holds the lease and no newer job superseded it."""
        if not self.queue.heartbeat(job, self.settings.store.lease_s):
            log.warning("job %d: lease lost; results kept, not delivered", job.id)
            return False
        current = self.queue.get(job.id)
        if current is not None and current.superseded_by is not None:
            log.info("job %d superseded by %d; not delivered", job.id, current.superseded_by)
            self.queue.complete(job, "superseded")
            return False
        return True

    def _fail(self, job: Job, reason: str) -> None:
        try:
            self.queue.fail(job, reason)
        except Exception:
            log.exception("job %d: cannot record the failure; its lease will expire", job.id)

    def _grader(self) -> Grader | None:
        """The grader, loaded once; without one the analysis is morphometry only (logged)."""
        if not self._grader_tried:
            from models import load_grader

            self._grader_tried = True
            try:
                self._grader_model = load_grader(self.settings.models)
            except ModelError as exc:
                log.warning("no usable grader, morphometry only: %s", exc)
        return self._grader_model


class _Heartbeat(threading.Thread):
    def __init__(self, queue: JobQueue, job: Job, lease_s: float) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.queue, self.job, self.lease_s = queue, job, lease_s
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.lease_s / 3):
            try:
                self.queue.heartbeat(self.job, self.lease_s)
            except Exception:
                log.exception("job %d: heartbeat failed; trying again", self.job.id)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def model_version(settings: ModelSettings) -> str:
    """The version that keys jobs (idempotency): the shipped models' versions and hashes."""
    from models.card import read_card
    from models.loading import model_folder

    parts = []
    for kind in ("segmenter", "outline", "grader"):
        try:
            card = read_card(model_folder(settings, kind))
        except ModelError:
            continue
        parts.append(f"{card.name}-{card.version}-{card.sha256[:8]}")
    return "+".join(parts) or "morphometry-only"
