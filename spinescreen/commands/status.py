"""``spinescreen status``: studies, series, jobs and their states from the store."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "status"
HELP = "show received studies, series (with rejection reasons) and jobs from the store"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N", help="rows per table (newest last)"
    )


def run(invocation: Invocation) -> int:
    from rich.console import Console
    from rich.table import Table

    from dicom_listener import JobQueue, SqlStore
    from spinescreen.errors import StoreError

    settings = invocation.settings()
    if settings.store.database_url is None and not settings.store.database.exists():
        raise StoreError(
            f"no store at {settings.store.database}; run 'spinescreen listen' first "
            "or pass the --data-dir it used"
        )
    store = SqlStore.open(settings.store.database, settings.store.database_url)
    try:
        studies = store.list_studies()
        series = store.list_series()
        jobs = JobQueue(store).list_jobs()
        instances = store.instance_count()
    finally:
        store.close()
    limit = max(1, invocation.args.limit)
    console = Console()
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
    for table in (study_table, series_table, job_table):
        console.print(table)
    return 0


def _counts(counts: Counter[str]) -> str:
    if not counts:
        return "(none)"
    return "(" + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) + ")"
