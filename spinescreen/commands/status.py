"""``spinescreen status``: studies, series, jobs and the delivery outbox from the store.

``--retry-dead`` requeues dead-lettered deliveries (a fresh give-up clock) and shows the result.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.table import Table

    from dicom_listener import Delivery, DeliveryState
    from spinescreen.cli import Invocation

NAME = "status"
HELP = "show received studies, series (with rejection reasons), jobs and result deliveries"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N", help="rows per table (newest last)"
    )
    parser.add_argument(
        "--retry-dead",
        action="store_true",
        help="requeue dead-lettered deliveries for another round of retries",
    )


def run(invocation: Invocation) -> int:
    from rich.console import Console
    from rich.table import Table

    from dicom_listener import DeliveryState, JobQueue, Outbox, SqlStore
    from spinescreen.errors import StoreError

    settings = invocation.settings()
    if settings.store.database_url is None and not settings.store.database.exists():
        raise StoreError(
            f"no store at {settings.store.database}; run 'spinescreen listen' first "
            "or pass the --data-dir it used"
        )
    store = SqlStore.open(settings.store.database, settings.store.database_url)
    try:
        outbox = Outbox(store, settings.delivery, settings.data_dir)
        requeued = outbox.retry_dead() if invocation.args.retry_dead else None
        studies = store.list_studies()
        series = store.list_series()
        jobs = JobQueue(store).list_jobs()
        instances = store.instance_count()
        delivery_counts = outbox.counts()
        dead = outbox.deliveries(DeliveryState.DEAD)
    finally:
        store.close()
    limit = max(1, invocation.args.limit)
    console = Console()
    if requeued is not None:
        console.print(f"Requeued {requeued} dead delivery(ies); 'spinescreen serve' sends them.")
    study_table = Table(title=f"Studies ({len(studies)}, {instances} instances)")
    for column in ("Study UID", "State", "Calling AE", "Completions"):
        study_table.add_column(column)
    for study in studies[-limit:]:
        study_table.add_row(study.study_uid, study.state, study.calling_ae, str(study.completions))
    series_table = Table(title=f"Series ({len(series)})")
    for column in ("Series UID", "Modality", "Instances", "Routed", "Rejection reason"):
        series_table.add_column(column)
    for item in series[-limit:]:
        routed = "pending" if item.routable is None else ("yes" if item.routable else "no")
        series_table.add_row(
            item.series_uid,
            item.modality,
            str(item.instance_count),
            routed,
            item.rejection_reason or "",
        )
    job_table = Table(title="Jobs " + _counts(Counter(job.state.value for job in jobs)))
    for column in ("Id", "Series UID", "Rev", "State", "Attempts", "Superseded by", "Last error"):
        job_table.add_column(column)
    for job in jobs[-limit:]:
        job_table.add_row(
            str(job.id),
            job.series_uid,
            str(job.revision),
            job.state.value,
            str(job.attempts),
            "" if job.superseded_by is None else str(job.superseded_by),
            job.last_error or "",
        )
    for table in (study_table, series_table, job_table, *_outbox_tables(delivery_counts, dead)):
        console.print(table)
    return 0


def _outbox_tables(
    counts: Mapping[tuple[str, DeliveryState], int], dead: Sequence[Delivery]
) -> list[Table]:
    """Deliveries per destination and state, then the dead letters with their last error."""
    from rich.table import Table

    from dicom_listener import DeliveryState

    states = list(DeliveryState)
    summary = Table(title="Deliveries " + _counts(_by_state(counts)))
    summary.add_column("Destination")
    for state in states:
        summary.add_column(state.value.capitalize(), justify="right")
    for name in sorted({name for name, _ in counts}):
        summary.add_row(name, *(str(counts.get((name, state), 0)) for state in states))
    dead_table = Table(
        title=f"Dead letters ({len(dead)}; requeue: spinescreen status --retry-dead)"
    )
    for column in ("Id", "Destination", "Study UID", "Object", "Attempts", "Last error"):
        dead_table.add_column(column)
    for item in dead:
        dead_table.add_row(
            str(item.id),
            item.destination,
            item.study_uid,
            f"{item.modality} {item.sop_instance_uid}",
            str(item.attempts),
            item.last_error or "",
        )
    return [summary, dead_table] if dead else [summary]


def _by_state(counts: Mapping[tuple[str, DeliveryState], int]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for (_, state), n in counts.items():
        totals[state.value] += n
    return totals


def _counts(counts: Counter[str]) -> str:
    if not counts:
        return "(none)"
    return "(" + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) + ")"
