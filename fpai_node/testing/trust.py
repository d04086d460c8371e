"""The two trust modes a test federation runs in (specs/0003-transport.md): `open`, where any
key holder may join (presets `local` and `testnet`), and `federation`, where a CA certifies each
member (preset `federation`). tests/adversarial/ runs every attack in both."""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from fpai_node.home import Home
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import (
    CA_CERT_FILE,
    CertificateAuthority,
    certificate_pem,
    create_ca,
    issue_node_certificate,
    save_certificate,
)
from fpai_node.identity.tls import TlsIdentity

TRUST_MODES = ("open", "federation")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Trust:
    """How a test federation's nodes, and its attackers, are certified."""

    mode: str
    ca: CertificateAuthority | None  # the federation's CA; None in the open mode

    @classmethod
    def create(cls, mode: str) -> "Trust":
        if mode not in TRUST_MODES:
            raise ValueError(f"trust mode: expected one of {TRUST_MODES}, got {mode!r}")
        return cls(mode, create_ca("Test federation CA", _now()) if mode == "federation" else None)

    def home(self, path: Path) -> Path:
        """A new node home in this mode: in `federation`, initialised with that preset and
        holding the certificate the CA issued for its key, as an operator would set it up."""
        if self.ca is not None:
            key = Home(path).init("federation")
            certs = path / "certs"
            save_certificate(
                certs / "node.crt", issue_node_certificate(self.ca, key.public_key, _now())
            )
            (certs / CA_CERT_FILE).write_bytes(certificate_pem(self.ca.certificate))
        return path

    def member(self, key: NodeKey) -> TlsIdentity:
        """A member's TLS identity: what a member that lies presents. In `open` anyone is one;
        in `federation` the CA certified it."""
        if self.ca is None:
            return TlsIdentity.open(key, _now())
        certificate = issue_node_certificate(self.ca, key.public_key, _now())
        return TlsIdentity.federation(key, certificate, self.ca.certificate, _now())

    @staticmethod
    def outsider(key: NodeKey) -> TlsIdentity:
        """Anyone's identity: an open certificate, which a `federation` node refuses."""
        return TlsIdentity.open(key, _now())


OPEN = Trust("open", None)
