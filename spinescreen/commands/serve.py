"""``spinescreen serve``: listener + analysis workers + delivery in one process, until SIGTERM."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "serve"
HELP = "run the service: receive studies, analyse complete series, deliver SR/SEG/key image"
ORDER = 5
CONFIG_FLAGS = {
    "port": "listener.port",
    "ae_title": "listener.ae_title",
    "workers": "serve.workers",
    "health_port": "serve.health_port",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, metavar="N", help="DICOM port (listener.port)")
    parser.add_argument("--ae-title", metavar="AE", help="our AE title (listener.ae_title)")
    parser.add_argument("--workers", type=int, metavar="N", help="analysis workers")
    parser.add_argument("--health-port", type=int, metavar="N", help="HTTP health port; 0: off")


def run(invocation: Invocation) -> int:
    import signal
    import threading

    from spinescreen import CLINICAL_DISCLAIMER
    from spinescreen.service import Service

    settings = invocation.settings()
    service = Service(settings)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    service.start()
    try:
        assert service.listener is not None
        print(
            f"spinescreen serve: {settings.listener.ae_title} on port {service.listener.port}, "
            f"data in {settings.data_dir}. {CLINICAL_DISCLAIMER}",
            flush=True,
        )
        while not stopping.wait(1.0):
            pass
    finally:
        service.stop()
    return 0
