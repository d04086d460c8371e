"""Renewing the node's certificate while it runs, as a supervisor action (`renew_certificate`).

Under the open CA (presets `local` and `testnet`) the node certifies its own key (specs/0003
CERT-8), so it re-issues its certificate once fewer than RENEW_BEFORE days are left. Under a
federation CA only the CA can: the operator puts the new certificate in <home>/certs/node.crt
(`fpai-node federation issue`), and the node presents it once it is checked (CERT-7) and lasts
longer than the one it runs with. Either way the node keeps running: every TLS context it made
presents the new certificate from its next handshake (TlsIdentity.renew).
"""

import asyncio
import datetime as dt
from pathlib import Path

import structlog
from cryptography import x509

from fpai_node.errors import FpaiError
from fpai_node.identity.certs import issue_node_certificate, load_certificate, open_ca
from fpai_node.identity.tls import TlsIdentity
from fpai_node.service import ActionGate

RENEW_CERTIFICATE = "renew_certificate"
KEY = f"{RENEW_CERTIFICATE}:node"
RENEW_BEFORE = dt.timedelta(days=30)  # before the supervisor's check warns (14 days)
ASK_EVERY_S = 1.0  # within the supervisor's QUIET_S while a renewal waits for approval
log = structlog.get_logger("fpai.supervisor")


class CertificatePolicy:
    def __init__(self, identity: TlsIdentity, gate: ActionGate, installed: Path | None) -> None:
        """`installed`: the federation preset's certificate file; None under the open CA."""
        self._identity = identity
        self._gate = gate
        self._installed = installed
        self._read: tuple[float, x509.Certificate | None] | None = None  # (mtime, certificate)

    async def run(self) -> None:
        while True:
            self.step(dt.datetime.now(dt.UTC))
            await asyncio.sleep(ASK_EVERY_S)

    def step(self, now: dt.datetime) -> None:
        """Ask for a renewal when one is due, and renew once the gate allows."""
        running = self._identity.certificate.not_valid_after_utc
        if self._installed is None:
            if running - now > RENEW_BEFORE:
                return
            summary = (
                f"re-issue this node's certificate under the open CA: it expires "
                f"{running:%Y-%m-%d %H:%M} UTC"
            )
            if self._gate.allow(KEY, RENEW_CERTIFICATE, "certificate", summary, reports=True):
                self._renew(issue_node_certificate(open_ca(), self._identity.key.public_key, now))
            return
        candidate = self._installed_certificate()
        if candidate is None or candidate.not_valid_after_utc <= running:
            return
        summary = (
            f"present the certificate in {self._installed}, valid until "
            f"{candidate.not_valid_after_utc:%Y-%m-%d} (the running one ends {running:%Y-%m-%d})"
        )
        if self._gate.allow(KEY, RENEW_CERTIFICATE, "certificate", summary, reports=True):
            self._renew(candidate)

    def _installed_certificate(self) -> x509.Certificate | None:
        """The certificate file as it is now, read again only when it changed."""
        assert self._installed is not None
        try:
            mtime = self._installed.stat().st_mtime
        except OSError:
            return None
        if self._read is None or self._read[0] != mtime:
            try:
                self._read = (mtime, load_certificate(self._installed))
            except FpaiError as exc:
                log.warning("installed certificate unreadable", error=str(exc))
                self._read = (mtime, None)
        return self._read[1]

    def _renew(self, certificate: x509.Certificate) -> None:
        try:
            self._identity.renew(certificate, dt.datetime.now(dt.UTC))
        except FpaiError as exc:
            self._gate.failed(KEY, str(exc))
            return
        until = certificate.not_valid_after_utc
        log.info("certificate renewed", valid_until=until.isoformat())
        self._gate.succeeded(KEY, f"renewed: valid until {until:%Y-%m-%d %H:%M} UTC")
