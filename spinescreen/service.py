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
        from dicom_listener import open_listener
        from dicom_listener.delivery import DeliveryWorker
        from dicom_listener.outbox import Outbox
        from pipeline.service import AnalysisWorker, StudyRouter, model_version

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.listener = open_listener(
            s.listener, s.store, model_version=model_version(s.models),
            router_factory=lambda store: StudyRouter(store, s.store.spool_dir, _rules(s)),
        )  # fmt: skip
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


def _rules(settings: Settings) -> Any:
    from pipeline.routing import load_rules

    return load_rules(settings.analysis.routing_rules)


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
