"""Index, study assembly, job queue and recovery on a real SQLite file (no network)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicom_listener import (
    IndexOutcome,
    InstanceHeader,
    JobQueue,
    JobState,
    SeriesInfo,
    Spool,
    SqlStore,
    StoredInstance,
    StudyAssembler,
    backoff_s,
    default_router,
    recover,
)
from dicom_listener.spool import safe_name
from tests.listener_data import ct_slice, to_bytes

CT = "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.22"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.open(tmp_path / "index.db")
    yield opened
    opened.close()


def stored(
    study: str,
    series: str,
    sop: str | None = None,
    at: float = 1000.0,
    quiet: float = 20.0,
    sha: str = "a" * 64,
    modality: str = "CT",
    sop_class: str = CT,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> StoredInstance:
    header = InstanceHeader(
        sop_class, sop or generate_uid(), study, series, "1.2.840.10008.1.2.1", modality, image_type
    )
    return StoredInstance(
        header, f"{study}/{series}/{header.sop_instance_uid}.dcm", 10, sha, "PACS", at, quiet
    )


def test_instances_are_deduplicated_by_sop_instance_uid(store: SqlStore) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    assert store.record_instance(stored(study, series, sop)) is IndexOutcome.NEW
    assert store.record_instance(stored(study, series, sop)) is IndexOutcome.DUPLICATE
    assert store.record_instance(stored(study, series, sop, sha="b" * 64)) is IndexOutcome.REPLACED
    assert store.instance_count() == 1
    assert store.instance_digest(sop) == "b" * 64, "the newer bytes must be kept"
    assert store.list_series()[0].instance_count == 1


def test_study_completes_after_quiet_period_with_one_job_per_routable_series(
    store: SqlStore,
) -> None:
    study, ct, sr, scout = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    for _ in range(3):
        store.record_instance(stored(study, ct, at=1000.0))
    store.record_instance(stored(study, sr, at=1001.0, modality="SR", sop_class=SR))
    store.record_instance(stored(study, scout, at=1002.0, image_type=("ORIGINAL", "LOCALIZER")))
    assembler = StudyAssembler(store, default_router, "m1")
    assert assembler.complete_due(now=1021.9) == [], "completed before the 20 s quiet period"
    job_ids = assembler.complete_due(now=1022.0)
    assert len(job_ids) == 1
    jobs = JobQueue(store).list_jobs()
    assert [(j.series_uid, j.state) for j in jobs] == [(ct, JobState.QUEUED)]
    reasons = {s.series_uid: s.rejection_reason for s in store.list_series()}
    assert reasons[ct] is None
    assert "modality SR" in (reasons[sr] or "")
    assert "LOCALIZER" in (reasons[scout] or "")
    assert assembler.complete_due(now=5000.0) == [], "a complete study must not queue again"


def test_a_router_failure_rejects_that_series_and_other_studies_still_complete(
    store: SqlStore,
) -> None:
    broken_study, good_study = generate_uid(), generate_uid()
    broken, good = generate_uid(), generate_uid()
    store.record_instance(stored(broken_study, broken, at=1000.0))
    store.record_instance(stored(good_study, good, at=1001.0))

    def router(series: SeriesInfo) -> str | None:
        if series.series_uid == broken:
            raise ValueError("malformed SliceThickness")
        return None

    job_ids = StudyAssembler(store, router, "m1").complete_due(now=2000.0)
    assert [j.series_uid for j in JobQueue(store).list_jobs()] == [good]
    assert len(job_ids) == 1
    reasons = {s.series_uid: s.rejection_reason for s in store.list_series()}
    assert "routing failed: ValueError: malformed SliceThickness" in (reasons[broken] or "")


def test_quiet_period_per_calling_ae_is_kept_in_the_index(store: SqlStore) -> None:
    study = generate_uid()
    store.record_instance(stored(study, generate_uid(), at=1000.0, quiet=60.0))
    assert store.due_studies(now=1059.0) == []
    assert [s.study_uid for s in store.due_studies(now=1060.0)] == [study]


def test_late_instance_reopens_study_and_supersedes_the_earlier_job(store: SqlStore) -> None:
    study, series = generate_uid(), generate_uid()
    store.record_instance(stored(study, series, at=1000.0))
    assembler = StudyAssembler(store, default_router, "m1")
    queue = JobQueue(store)
    [first] = assembler.complete_due(now=1020.0)
    job = queue.claim("w1", lease_s=60, now=1021.0)
    assert job is not None and job.id == first
    assert queue.complete(job, "sr:1", now=1022.0)
    store.record_instance(stored(study, series, at=1030.0))
    assert store.list_studies()[0].state == "open"
    [second] = assembler.complete_due(now=1050.0)
    jobs = {j.id: j for j in queue.list_jobs()}
    assert jobs[second].revision == 2
    assert jobs[first].superseded_by == second
    assert store.list_studies()[0].completions == 2


def test_reopened_study_reuses_a_job_that_is_still_queued(store: SqlStore) -> None:
    study, series = generate_uid(), generate_uid()
    assembler = StudyAssembler(store, default_router, "m1")
    store.record_instance(stored(study, series, at=1000.0))
    [first] = assembler.complete_due(now=1020.0)
    store.record_instance(stored(study, series, at=1030.0))
    assert assembler.complete_due(now=1050.0) == [first]
    assert len(JobQueue(store).list_jobs()) == 1


def queued_job(store: SqlStore) -> int:
    store.record_instance(stored(generate_uid(), generate_uid(), at=1000.0))
    [job_id] = StudyAssembler(store, default_router, "m1").complete_due(now=1020.0)
    return job_id


def test_failed_jobs_back_off_exponentially_then_go_dead(store: SqlStore) -> None:
    queue = JobQueue(store, max_attempts=3, backoff_base_s=10.0, backoff_max_s=15.0)
    job_id = queued_job(store)
    now = 2000.0
    delays = []
    for attempt in (1, 2):
        job = queue.claim("w", lease_s=60, now=now)
        assert job is not None and job.id == job_id and job.attempts == attempt
        assert queue.fail(job, "boom", now=now) is JobState.FAILED
        delay = backoff_s(attempt, 10.0, 15.0)
        delays.append(delay)
        assert queue.claim("w", lease_s=60, now=now + delay - 0.01) is None, (
            "claimed during backoff"
        )
        now += delay
    assert delays == [10.0, 15.0], f"backoff 10 s then doubled and capped at 15 s, got {delays}"
    job = queue.claim("w", lease_s=60, now=now)
    assert job is not None
    assert queue.fail(job, "boom", now=now) is JobState.DEAD
    assert queue.claim("w", lease_s=60, now=now + 1e6) is None
    final = queue.get(job_id)
    assert final is not None and final.state is JobState.DEAD and final.last_error == "boom"


def test_expired_lease_is_retried_and_the_old_worker_loses_it(store: SqlStore) -> None:
    queue = JobQueue(store)
    queued_job(store)
    job = queue.claim("dead-worker", lease_s=30, now=2000.0)
    assert job is not None
    assert queue.heartbeat(job, lease_s=30, now=2020.0), "heartbeat within the lease"
    assert queue.claim("w2", lease_s=30, now=2049.0) is None, "lease renewed to 2050"
    again = queue.claim("w2", lease_s=30, now=2051.0)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert not queue.heartbeat(job, lease_s=30, now=2052.0)
    assert not queue.complete(job, "late", now=2053.0)
    assert queue.complete(again, "sr:2", now=2054.0)
    assert queue.get(job.id).state is JobState.DONE  # type: ignore[union-attr]


def test_record_series_rejection_is_shown_on_the_series(store: SqlStore) -> None:
    series = generate_uid()
    store.record_instance(stored(generate_uid(), series))
    store.record_series_rejection(series, "fewer than 20 slices")
    [info] = store.list_series()
    assert info.routable is False and info.rejection_reason == "fewer than 20 slices"


@pytest.mark.parametrize(
    ("modality", "sop_class", "image_type", "routed"),
    [
        ("CT", CT, ("ORIGINAL", "PRIMARY", "AXIAL"), True),
        ("DX", "1.2.840.10008.5.1.4.1.1.1.1", ("ORIGINAL", "PRIMARY"), True),
        ("CT", CT, ("DERIVED", "SECONDARY", "MPR"), False),
        ("MR", "1.2.840.10008.5.1.4.1.1.4", ("ORIGINAL", "PRIMARY"), False),
        ("CT", "1.2.840.10008.5.1.4.1.1.7", ("ORIGINAL",), False),  # secondary capture
    ],
)
def test_default_router(
    modality: str, sop_class: str, image_type: tuple[str, ...], routed: bool
) -> None:
    info = SeriesInfo("1", "2", modality, sop_class, image_type, 1, 10, True, None, None)
    reason = default_router(info)
    assert (reason is None) is routed, reason


def test_recovery_cleans_temp_reindexes_and_resumes(tmp_path: Path, store: SqlStore) -> None:
    spool = Spool(tmp_path / "spool")
    (spool.temp / "unfinished.part").write_bytes(b"half a file")
    ds = ct_slice(generate_uid(), generate_uid(), 0)
    data = to_bytes(ds)
    relative = spool.relative_path(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    spool.write(relative, data)  # renamed but never indexed: the crash window
    queue = JobQueue(store)
    report = recover(spool, store, queue, lambda ae: 0.01)
    assert (report.temp_files_removed, report.files_reindexed) == (1, 1)
    assert store.instance_digest(ds.SOPInstanceUID) == hashlib.sha256(data).hexdigest()
    assert list(spool.temp.iterdir()) == []
    time.sleep(0.02)
    assert StudyAssembler(store, default_router, "m1").complete_due() != []


def test_spool_names_are_safe() -> None:
    assert safe_name("1.2.3") == "1.2.3"
    for bad in ("../etc", "..", "a/b", ""):
        name = safe_name(bad)
        assert "/" not in name and name not in (".", "..") and name.startswith("x")


def test_group_commit_isolates_a_failing_record() -> None:
    from concurrent.futures import Future

    from dicom_listener.indexing import GroupCommit

    good, bad = stored(generate_uid(), generate_uid()), stored(generate_uid(), generate_uid())
    batches: list[int] = []

    def commit(batch: list[StoredInstance]) -> list[IndexOutcome]:
        batches.append(len(batch))
        if bad in batch:
            raise RuntimeError("constraint violated")
        return [IndexOutcome.NEW] * len(batch)

    group = GroupCommit(commit)
    futures: list[Future[IndexOutcome]] = [Future(), Future()]
    group._run([(good, futures[0]), (bad, futures[1])])
    assert futures[0].result() is IndexOutcome.NEW
    with pytest.raises(RuntimeError, match="constraint"):
        futures[1].result()
    assert batches == [2, 1, 1], f"batch sizes committed: {batches}"


def test_concurrent_records_are_all_committed(store: SqlStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    study, series = generate_uid(), generate_uid()
    records = [stored(study, series) for _ in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(store.record_instance, records))
    assert outcomes == [IndexOutcome.NEW] * 40
    assert store.instance_count() == 40
    assert store.list_series()[0].instance_count == 40
