"""``spinescreen listen``: run the DICOM Storage SCP until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "listen"
HELP = "receive studies from a PACS (DICOM C-STORE) and queue complete series for analysis"
ORDER = 10
CONFIG_FLAGS = {"port": "listener.port", "ae_title": "listener.ae_title"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, metavar="N", help="TCP port (listener.port)")
    parser.add_argument("--ae-title", metavar="AE", help="our AE title (listener.ae_title)")


def run(invocation: Invocation) -> int:
    from spinescreen.service import open_routed_listener

    settings = invocation.settings()
    listener = open_routed_listener(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        listener.start()
        print(
            f"spinescreen listen: {settings.listener.ae_title} on "
            f"{settings.listener.host}:{listener.port}, data in {settings.data_dir}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        listener.stop()
        listener.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
