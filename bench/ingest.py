"""Ingest benchmark: SpineScreen's listener against Orthanc configured durable, same run.

Sends the same uncompressed 512x512 CT instances (400 by default) with dcmtk ``storescu``
(``TCP_NODELAY=1`` for both sides) over one association, then over 4 concurrent
associations, to

* the SpineScreen listener (in this process: fsync + rename + SQLite WAL synchronous=FULL
  commit before every 0x0000), and
* Orthanc with ``SyncStorageArea: true`` (fsync per instance), ``StorageCompression: false``,
  ``OverwriteInstances: false``.

Every measured run starts from an empty store on both sides (fresh data folder, fresh Orthanc
storage), because Orthanc silently skips instances it already holds. Prints instances per
second for both and the ratio (listener / Orthanc; >= 1 means at least Orthanc's rate).

    .venv/bin/python bench/ingest.py [--instances 400] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydicom.uid import generate_uid  # noqa: E402

from tests.listener_data import listener_settings  # noqa: E402

CONCURRENCY = (1, 4)


def make_instances(folder: Path, count: int, size: int = 512) -> list[Path]:
    from tests.listener_data import ct_slice

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    files = []
    for index in range(count):
        ds = ct_slice(study, series, index, size=size)
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def send(storescu: str, port: int, called_ae: str, files: list[Path], associations: int) -> float:
    """Seconds for ``associations`` concurrent storescu processes to send ``files``."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    chunks = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                storescu,
                "-aet",
                "BENCH",
                "-aec",
                called_ae,
                "127.0.0.1",
                str(port),
                *map(str, chunk),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for chunk in chunks
    ]
    failures = [p.communicate()[1].decode(errors="replace") for p in processes if p.wait()]
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"storescu failed: {failures[0][-2000:]}")
    return elapsed


def run_listener(storescu: str, files: list[Path], workdir: Path, associations: int) -> float:
    from dicom_listener import open_listener
    from dicom_listener.settings import StoreSettings

    data = workdir / "listener"
    shutil.rmtree(data, ignore_errors=True)
    config = listener_settings(quiet_period_s=3600.0, max_associations=16)
    store = StoreSettings(spool_dir=data / "spool", database=data / "index.db")
    listener = open_listener(config, store)
    listener.start()
    try:
        elapsed = send(storescu, listener.port, config.ae_title, files, associations)
        stored = listener.store.instance_count()
    finally:
        listener.stop(drain_timeout_s=10)
        listener.store.close()
    if stored != len(files):
        raise RuntimeError(f"listener stored {stored} of {len(files)} instances")
    return elapsed


def run_orthanc(storescu: str, files: list[Path], workdir: Path, associations: int) -> float:
    from tests.orthanc import OrthancServer

    with OrthancServer(workdir / "orthanc", sync_storage=True) as orthanc:
        elapsed = send(storescu, orthanc.dicom_port, orthanc.aet, files, associations)
        stored = orthanc.instance_count()
    if stored != len(files):
        raise RuntimeError(f"Orthanc stored {stored} of {len(files)} instances")
    return elapsed


def measure(
    runner: Callable[[str, list[Path], Path, int], float],
    storescu: str,
    files: list[Path],
    workdir: Path,
    associations: int,
    repeats: int,
) -> float:
    """Median instances per second over ``repeats`` runs, each from an empty store."""
    rates = [len(files) / runner(storescu, files, workdir, associations) for _ in range(repeats)]
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp folder)")
    args = parser.parse_args(argv)
    storescu = shutil.which("storescu")
    if storescu is None or not Path("/usr/sbin/Orthanc").exists():
        print("needs dcmtk (storescu) and orthanc (/usr/sbin/Orthanc)", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spinescreen-bench-"))
    files = make_instances(workdir / "instances", args.instances)
    print(f"{len(files)} uncompressed 512x512 CT instances, {args.repeats} run(s) per case")
    print(f"{'associations':>12} {'listener/s':>11} {'orthanc/s':>10} {'ratio':>6}")
    for associations in CONCURRENCY:
        ours = measure(run_listener, storescu, files, workdir, associations, args.repeats)
        theirs = measure(run_orthanc, storescu, files, workdir, associations, args.repeats)
        print(f"{associations:>12} {ours:>11.1f} {theirs:>10.1f} {ours / theirs:>6.2f}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
