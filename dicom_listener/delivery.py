"""Delivery of outbox rows: a C-STORE SCU per destination and the embedded folder destination.

:class:`DeliveryWorker` is a thread: it claims due rows, groups them per destination, sends each
group over one association (or writes it to the folder), and records done or failed (backoff,
then dead) in the :class:`~dicom_listener.outbox.Outbox`. A destination that is down costs one
refused association per poll at most, never a crash.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dicom_listener.outbox import Delivery, DeliveryState, Outbox, durable_copy
from dicom_listener.settings import (
    FOLDER_DESTINATION,
    DeliverySettings,
    DestinationSettings,
    DestinationTlsSettings,
)
from dicom_listener.spool import safe_name
from spinescreen.errors import ConfigError

logger = logging.getLogger(__name__)

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# Warning statuses: the object is stored (coerced, elements discarded...), so it is delivered.
WARNING_STATUSES = frozenset({0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007})


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt: ``error`` is None on success."""

    delivery: Delivery
    error: str | None = None


def client_ssl_context(tls: DestinationTlsSettings, name: str) -> ssl.SSLContext | None:
    """The TLS client context for a destination, or None when TLS is off."""
    if not tls.enabled:
        return None
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if tls.ca_file is None else str(tls.ca_file)
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load TLS files of delivery destination {name!r} ({tls.ca_file}, "
            f"{tls.cert_file}, {tls.key_file}): {exc}; check the paths and that they are PEM"
        ) from exc
    return context


def deliver_to_folder(settings: DeliverySettings, batch: Sequence[Delivery]) -> list[Outcome]:
    """Write each object to ``<outbox_dir>/<study>/<Modality>_<SOPInstanceUID>.dcm``."""
    outcomes = []
    for delivery in batch:
        target = settings.outbox_dir / safe_name(delivery.study_uid) / delivery.path.name
        try:
            durable_copy(delivery.path, target)
        except OSError as exc:
            outcomes.append(Outcome(delivery, f"cannot write {target}: {exc.strerror}"))
        else:
            outcomes.append(Outcome(delivery))
    return outcomes


def deliver_by_c_store(
    destination: DestinationSettings,
    calling_ae_title: str,
    timeout_s: float,
    batch: Sequence[Delivery],
) -> list[Outcome]:
    """C-STORE ``batch`` over one association to ``destination``; one outcome per delivery."""
    from pynetdicom import AE

    ae = AE(ae_title=destination.calling_ae_title or calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    for sop_class in sorted({d.sop_class_uid for d in batch}):
        ae.add_requested_context(sop_class, [EXPLICIT_VR_LITTLE_ENDIAN])
    context = client_ssl_context(destination.tls, destination.name)
    tls_args = None if context is None else (context, destination.host)
    where = f"{destination.ae_title}@{destination.host}:{destination.port}"
    unreachable = _tcp_unreachable(destination.host, destination.port, timeout_s)
    if unreachable is not None:
        return [Outcome(d, f"cannot connect to {where}: {unreachable}") for d in batch]
    try:
        assoc = ae.associate(
            destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args
        )
    except (OSError, ValueError) as exc:
        return [Outcome(d, f"cannot associate with {where}: {exc}") for d in batch]
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "no association (peer down?)"
        _close_socket(assoc)
        return [Outcome(d, f"{why}: {where}") for d in batch]
    try:
        return [_send_one(assoc, d, where) for d in batch]
    finally:
        if assoc.is_established:
            assoc.release()
        _close_socket(assoc)


def _tcp_unreachable(host: str, port: int, timeout_s: float) -> str | None:
    """Why a TCP connection to the peer fails, or None when it connects.

    Checked before pynetdicom connects: on a refused connection pynetdicom 3 drops its socket
    without closing it (``shutdown`` raises first), which leaks a file descriptor per retry.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _send_one(assoc: Any, delivery: Delivery, where: str) -> Outcome:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    if not assoc.is_established:
        return Outcome(delivery, f"association with {where} lost before sending")
    try:
        dataset = dcmread(delivery.path)
    except (OSError, InvalidDicomError) as exc:
        return Outcome(delivery, f"cannot read {delivery.path}: {exc}")
    try:
        status = assoc.send_c_store(dataset)
    except (ValueError, RuntimeError) as exc:  # no accepted context, failed encoding
        return Outcome(delivery, f"{where} cannot take {delivery.sop_class_uid}: {exc}")
    if "Status" not in status:
        return Outcome(delivery, f"no C-STORE response from {where} (timeout or abort)")
    code = int(status.Status)
    if code == 0x0000 or code in WARNING_STATUSES:
        if code:
            logger.warning("delivery: %s stored with warning 0x%04X", where, code)
        return Outcome(delivery)
    comment = str(status.get("ErrorComment", ""))
    return Outcome(delivery, f"{where} answered C-STORE status 0x{code:04X} {comment}".rstrip())


def _close_socket(assoc: Any) -> None:
    """Close the socket pynetdicom's SCU can leave open after a refused association."""
    assoc.dul.join(timeout=5)
    raw = getattr(assoc.dul.socket, "socket", None)
    if raw is not None:
        raw.close()


class DeliveryWorker:
    """The delivery thread: ``start()``, ``wake()`` after a submit, ``stop()``."""

    def __init__(
        self, outbox: Outbox, settings: DeliverySettings, calling_ae_title: str = "SPINESCREEN"
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.calling_ae_title = calling_ae_title
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._destinations = {d.name: d for d in settings.destinations}

    def start(self) -> None:
        """Requeue deliveries a previous process left ``sending``, then start the thread."""
        for destination in self.settings.destinations:  # fail fast on bad TLS files
            client_ssl_context(destination.tls, destination.name)
        self.outbox.requeue_interrupted()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for due rows now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the batch in progress (its outcomes are recorded)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # a store hiccup must not end delivery for good
                logger.exception("delivery: round failed; retrying at the next poll")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def deliver_due(self) -> int:
        """One round: claim due rows, deliver them per destination; how many were delivered."""
        lease_s = 4 * self.settings.association_timeout_s + 60
        batch = self.outbox.claim_due(lease_s)
        by_destination: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in batch:
            by_destination[delivery.destination].append(delivery)
        delivered = 0
        for name, group in by_destination.items():
            try:
                outcomes = self._deliver(name, group)
            except Exception as exc:  # never strand claimed rows in "sending"
                logger.exception("delivery: unexpected error towards %s", name)
                outcomes = [Outcome(d, f"unexpected error: {exc!r}") for d in group]
            for outcome in outcomes:
                delivered += self._record(outcome)
        return delivered

    def _deliver(self, name: str, group: list[Delivery]) -> list[Outcome]:
        if name == FOLDER_DESTINATION:
            return deliver_to_folder(self.settings, group)
        destination = self._destinations.get(name)
        if destination is None:
            error = f"destination {name!r} is no longer configured (delivery.destinations)"
            return [Outcome(d, error) for d in group]
        timeout = self.settings.association_timeout_s
        return deliver_by_c_store(destination, self.calling_ae_title, timeout, group)

    def _record(self, outcome: Outcome) -> int:
        delivery = outcome.delivery
        if outcome.error is None:
            self.outbox.mark_done(delivery)
            logger.info(
                "delivery: %s %s -> %s",
                delivery.modality,
                delivery.sop_instance_uid,
                delivery.destination,
            )
            return 1
        state = self.outbox.mark_failed(delivery, outcome.error)
        if state == DeliveryState.PENDING:
            logger.warning(
                "delivery: %s %s -> %s failed (attempt %d), will retry: %s",
                delivery.modality,
                delivery.sop_instance_uid,
                delivery.destination,
                delivery.attempts + 1,
                outcome.error,
            )
        return 0
