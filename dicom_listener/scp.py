"""The Storage SCP: a pynetdicom AE with C-ECHO, C-STORE for every storage class and syntax.

:class:`Listener` runs the server, the association policy and the completion ticker in the
current process (``spinescreen listen`` alone, ``spinescreen serve`` beside workers).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from dicom_listener.assembly import CompletionTicker, StudyAssembler
from dicom_listener.jobs import JobQueue
from dicom_listener.policy import AssociationPolicy, AssociationRequest
from dicom_listener.receiver import Receiver
from dicom_listener.recovery import RecoveryReport, recover
from dicom_listener.routing import SeriesRouter, default_router
from dicom_listener.settings import ListenerSettings, StoreSettings, TlsSettings
from dicom_listener.spool import Spool
from dicom_listener.store import SqlStore
from spinescreen.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

DEFAULT_MODEL_VERSION = "unversioned"
# Largest P-DATA PDU we accept: large PDUs mean fewer Python-level fragments per instance.
MAX_PDU_BYTES = 4 * 2**20


class Listener:
    """``Listener(config, store, spool, queue).start()`` ... ``.stop()``."""

    def __init__(
        self,
        config: ListenerSettings,
        store: SqlStore,
        spool: Spool,
        queue: JobQueue,
        router: SeriesRouter = default_router,
        model_version: str = DEFAULT_MODEL_VERSION,
    ) -> None:
        self.config = config
        self.store = store
        self.spool = spool
        self.queue = queue
        self.receiver = Receiver(config, spool, store)
        self.policy = AssociationPolicy(config, spool.free_mb)
        self.assembler = StudyAssembler(store, router, model_version)
        self._ticker: CompletionTicker | None = None
        self._server: ThreadedAssociationServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None:
            raise StoreError("the listener is not running; call start() first")
        return int(self._server.server_address[1])

    def start(self) -> RecoveryReport:
        """Recover from any crash, then accept associations and start completing studies."""
        report = recover(self.spool, self.store, self.queue, self.config.quiet_period_for)
        ae = self._build_ae()
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, _on_echo),
            (evt.EVT_C_STORE, self.receiver.handle_store),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_RELEASED, self._on_finished),
            (evt.EVT_ABORTED, self._on_finished),
        ]
        try:
            self._server = ae.start_server(
                (self.config.host, self.config.port),
                block=False,
                evt_handlers=handlers,
                ssl_context=build_ssl_context(self.config.tls),
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}; "
                "choose another listener.port or stop the program using it"
            ) from exc
        self._ticker = CompletionTicker(self.assembler, self.config.completion_check_s)
        self._ticker.start()
        log.info(
            "listening as %s on %s:%d%s",
            self.config.ae_title,
            self.config.host,
            self.port,
            " (TLS)" if self.config.tls.enabled else "",
        )
        return report

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop accepting, let in-flight associations finish (bounded), stop the ticker."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            deadline = time.monotonic() + (drain_timeout_s or self.config.dimse_timeout_s)
            while server.active_associations and time.monotonic() < deadline:
                time.sleep(0.05)
            for assoc in server.active_associations:
                log.warning("aborting association from %s at shutdown", assoc.requestor.ae_title)
                assoc.abort()
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        log.info("listener stopped")

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        ae.require_called_aet = False  # the policy checks it and logs why
        ae.maximum_associations = self.config.max_associations + 1000  # policy decides
        ae.maximum_pdu_size = MAX_PDU_BYTES
        ae.acse_timeout = self.config.acse_timeout_s
        ae.dimse_timeout = self.config.dimse_timeout_s
        ae.network_timeout = self.config.network_timeout_s
        return ae

    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        request = AssociationRequest(
            calling_ae=str(assoc.requestor.primitive.calling_ae_title).strip(),
            called_ae=str(assoc.requestor.primitive.called_ae_title).strip(),
            address=str(assoc.requestor.address),
            active_associations=_count_acceptors(assoc),
        )
        refusal = self.policy.refusal(request)
        if refusal is None:
            return
        log.warning(
            "association from %s (%s) to %s refused: %s",
            request.calling_ae,
            request.address,
            request.called_ae,
            refusal.reason,
            extra={"calling_ae": request.calling_ae, "peer": request.address},
        )
        assoc.acse.send_reject(refusal.result, refusal.source, refusal.diagnostic)
        assoc.kill()

    def _on_finished(self, event: Any) -> None:
        counts = self.receiver.association_summary(event.assoc)
        if not counts:
            return
        log.info(
            "association from %s %s: %d instance(s) acknowledged, %d refused",
            str(event.assoc.requestor.ae_title).strip(),
            event.event.name.removeprefix("EVT_").lower(),
            counts[0x0000],
            sum(counts.values()) - counts[0x0000],
            extra={"calling_ae": str(event.assoc.requestor.ae_title).strip()},
        )


def _on_echo(event: Any) -> int:
    return 0x0000


def _count_acceptors(assoc: Any) -> int:
    server = getattr(assoc, "_server", None)
    if server is None:
        return 1
    return len(server.active_associations)


class ClosingSSLContext(ssl.SSLContext):
    """Closes the TCP socket and logs why when a TLS handshake fails (pynetdicom would leak it)."""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        peer = _peer_of(sock)
        try:
            return super().wrap_socket(sock, *args, **kwargs)
        except (OSError, ValueError) as exc:
            sock.close()
            log.warning("TLS handshake with %s failed: %s", peer, exc, extra={"peer": peer})
            raise


def _peer_of(sock: Any) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "unknown peer"


def build_ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The server TLS context from config, or None when TLS is off."""
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    context = ClosingSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.ca_file is not None:
            context.load_verify_locations(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load TLS files (listener.tls: {tls.cert_file}, {tls.key_file}, "
            f"{tls.ca_file}): {exc}; check the paths and that they are PEM"
        ) from exc
    if tls.require_client_cert:
        if tls.ca_file is None:
            raise ConfigError("listener.tls.require_client_cert needs listener.tls.ca_file")
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca_file is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def open_listener(
    config: ListenerSettings,
    store_config: StoreSettings,
    router: SeriesRouter = default_router,
    model_version: str = DEFAULT_MODEL_VERSION,
    router_factory: Callable[[SqlStore], SeriesRouter] | None = None,
) -> Listener:
    """A :class:`Listener` on the store and spool named in ``store_config`` (StoreSettings).

    ``router_factory`` builds the router from the opened store (routing rules that read the
    spooled headers need it); it takes precedence over ``router``.
    """
    store = SqlStore.open(store_config.database, store_config.database_url)
    if router_factory is not None:
        router = router_factory(store)
    queue = JobQueue(
        store,
        store_config.job_max_attempts,
        store_config.backoff_base_s,
        store_config.backoff_max_s,
    )
    return Listener(config, store, Spool(store_config.spool_dir), queue, router, model_version)
