"""``spinescreen serve`` as an object: listener + analysis workers + delivery + health endpoint.

Everything shares one store (SQLite by default). ``start()`` recovers what a crash left
behind (partial transfers, expired job leases, deliveries left "sending"), then serves.
``stop()`` is graceful: the listener stops accepting and lets running associations finish,
each worker finishes its current job, delivery finishes its batch. Nothing acknowledged or
finished is lost, because every step is committed before it is reported.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dicom_listener import Listener
    from dicom_listener.delivery import DeliveryWorker
    from dicom_listener.outbox import Outbox
    from pipeline.service import AnalysisWorker, LabelSource
    from spinescreen.config import Settings

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, labels: LabelSource | None = None) -> None:
        self.settings = settings
        self.labels = labels
        self.listener: Listener | None = None
        self.outbox: Outbox | None = None
        self.delivery: DeliveryWorker | None = None
        self.workers: list[AnalysisWorker] = []
        self.health: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Start every part; on failure, stop what already started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from dicom_listener.delivery import DeliveryWorker
        from dicom_listener.outbox import Outbox
        from pipeline.service import AnalysisWorker

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.labels is None:
            _warn_without_segmenter(s)
        self.listener = open_routed_listener(s)
        self.listener.start()
        self.outbox = Outbox(self.listener.store, s.delivery, s.data_dir)
        self.delivery = DeliveryWorker(self.outbox, s.delivery, s.listener.ae_title)
        self.delivery.start()
        self.workers = [
            AnalysisWorker(
                f"worker-{n}",
                s,
                self.listener.store,
                self.listener.queue,
                self._submit,
                self.labels,
            )
            for n in range(1, s.serve.workers + 1)
        ]
        for worker in self.workers:
            worker.start()
        if s.serve.health_port:
            self.health = _health_server(self, s.serve.health_port)
        log.info("serving: %d worker(s), results to %s", len(self.workers), s.delivery.outbox_dir)

    def _submit(self, study_uid: str, files: Sequence[Path], job_id: int) -> object:
        assert self.outbox is not None and self.delivery is not None
        ids = self.outbox.submit(study_uid, files, job_id)
        self.delivery.wake()
        return ids

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join()
        if self.delivery is not None:
            self.delivery.stop()
        if self.health is not None:
            self.health.shutdown()
            self.health.server_close()
        if self.listener is not None:
            self.listener.store.close()
        log.info("stopped cleanly")

    def status(self) -> dict[str, Any]:
        """What the health endpoint answers: liveness of each part and queue counts."""
        listener = self.listener
        if listener is None or not listener.running:
            return {"status": "stopped", "jobs": {}, "deliveries": {}}
        jobs: dict[str, int] = {}
        if listener is not None:
            for job in listener.queue.list_jobs():
                jobs[job.state.value] = jobs.get(job.state.value, 0) + 1
        deliveries: dict[str, int] = {}
        if self.outbox is not None:
            for (_, state), count in self.outbox.counts().items():
                deliveries[state.value] = deliveries.get(state.value, 0) + count
        alive = [w.is_alive() for w in self.workers]
        healthy = listener is not None and all(alive)
        return {
            "status": "ok" if healthy else "degraded",
            "listener_port": listener.port if listener is not None else None,
            "workers_alive": sum(alive),
            "workers": len(alive),
            "jobs": jobs,
            "deliveries": deliveries,
        }


def open_routed_listener(settings: Settings) -> Listener:
    """The listener with the analysis routing rules and the installed models' version."""
    from dicom_listener import open_listener
    from pipeline.routing import load_rules
    from pipeline.service import StudyRouter, model_version

    rules = load_rules(settings.analysis.routing_rules)
    return open_listener(
        settings.listener,
        settings.store,
        model_version=model_version(settings.models),
        router_factory=lambda store: StudyRouter(store, settings.store.spool_dir, rules),
    )


def _warn_without_segmenter(settings: Settings) -> None:
    from models.card import read_card
    from models.loading import model_folder
    from spinescreen.errors import ModelError

    try:
        read_card(model_folder(settings.models, "segmenter"))
    except ModelError as exc:
        log.error("no segmenter installed: every analysis job will fail until one is (%s)", exc)


def _health_server(service: Service, port: int) -> ThreadingHTTPServer:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/health", ""):
                self.send_error(404, "try /health")
                return
            body = service.status()
            payload = json.dumps(body).encode()
            self.send_response(200 if body["status"] == "ok" else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health: %s", format % args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("health endpoint on http://127.0.0.1:%d/health", port)
    return server
