"""The index and job tables (SQLAlchemy Core): one schema for SQLite now and PostgreSQL later.

Times are POSIX seconds (floats), so the same code runs on both databases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)

READ_ONLY = "spinescreen_read_only"  # execution option: a read transaction (deferred BEGIN)

UID = String(64)
AE = String(16)

metadata = MetaData()

studies = Table(
    "studies",
    metadata,
    Column("study_uid", UID, primary_key=True),
    Column("state", String(16), nullable=False),  # open | complete
    Column("calling_ae", AE, nullable=False),
    Column("first_received_at", Float, nullable=False),
    Column("last_instance_at", Float, nullable=False),
    Column("due_at", Float, nullable=False, index=True),  # last instance + quiet period
    Column("completed_at", Float),
    Column("completions", Integer, nullable=False, default=0),
)

series = Table(
    "series",
    metadata,
    Column("series_uid", UID, primary_key=True),
    Column("study_uid", UID, ForeignKey("studies.study_uid"), nullable=False, index=True),
    Column("modality", String(16), nullable=False),
    Column("sop_class_uid", UID, nullable=False),
    Column("image_type", String(128), nullable=False),
    Column("series_number", Integer),
    Column("instance_count", Integer, nullable=False),
    Column("changed", Boolean, nullable=False),  # instances arrived since the last completion
    Column("routable", Boolean),
    Column("rejection_reason", Text),
)

instances = Table(
    "instances",
    metadata,
    Column("sop_instance_uid", UID, primary_key=True),
    Column("series_uid", UID, ForeignKey("series.series_uid"), nullable=False, index=True),
    Column("study_uid", UID, nullable=False),
    Column("sop_class_uid", UID, nullable=False),
    Column("transfer_syntax_uid", UID, nullable=False),
    Column("path", String(512), nullable=False),  # relative to the spool root
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("calling_ae", AE, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("replacements", Integer, nullable=False, default=0),
)

replacements = Table(
    "instance_replacements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sop_instance_uid", UID, nullable=False, index=True),
    Column("old_sha256", String(64), nullable=False),
    Column("new_sha256", String(64), nullable=False),
    Column("replaced_at", Float, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_uid", UID, nullable=False),
    Column("series_uid", UID, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", Float, nullable=False),
    Column("lease_until", Float),
    Column("worker_id", String(128)),
    Column("last_error", Text),
    Column("result_ref", Text),
    Column("superseded_by", Integer),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("study_uid", "series_uid", "model_version", "revision", name="uq_job_key"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", String(128), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("outcome", String(16)),  # done | failed | expired
    Column("reason", Text),
)

series_rejections = Table(
    "series_rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series_uid", UID, nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
)


deliveries = Table(  # the outbox: one row per result object and destination
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_uid", UID, nullable=False),
    Column("sop_instance_uid", UID, nullable=False),
    Column("sop_class_uid", UID, nullable=False),
    Column("modality", String(16), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("path", String(512), nullable=False),  # relative to the results folder
    Column("job_id", Integer),
    Column("state", String(16), nullable=False, index=True),  # pending|sending|done|dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, index=True),
    Column("lease_until", Float),  # a "sending" row whose lease passed is retried
    Column("queued_at", Float, nullable=False),  # submit (or requeue): give-up clock start
    Column("delivered_at", Float),
    Column("last_error", Text),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("sop_instance_uid", "destination", name="uq_delivery_key"),
)


def database_engine(url: str | None, sqlite_file: Path) -> Engine:
    """An engine with the tables created; SQLite runs in WAL mode with full fsync per commit."""
    if url is None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{sqlite_file}"
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    metadata.create_all(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """WAL + synchronous=FULL (a commit is on disk when it returns); writes BEGIN IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
