"""TLS contexts for the peer channel and the peer's node id (specs/0003-transport.md, TLS-1..TLS-8).

Both trust modes build the same contexts; they differ only in the trust anchor. Stdlib ssl has
no verification callback, so OpenSSL must accept the peer's chain by itself (the federation CA,
or the open CA whose key is public), and identity is established after the handshake by
`peer_node_id`: the certificate key, proven by TLS 1.3 CertificateVerify, names the node.
"""

import datetime as dt
import os
import ssl
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509

from fpai_node.errors import FpaiError
from fpai_node.identity.certs import (
    CertificateError,
    certificate_pem,
    check_own_certificate,
    issue_node_certificate,
    node_id_of_certificate,
    open_ca,
)
from fpai_node.identity.keys import NodeKey

TrustMode = Literal["federation", "open"]
PeerRefusal = Literal["no_certificate", "bad_certificate", "node_id_mismatch"]


class PeerIdentityError(FpaiError):
    """A peer whose certificate does not establish the node id we need (TLS-6, TLS-7).

    `reason` is a fixed label for counting refusals; the message is for logs.
    """

    def __init__(self, reason: PeerRefusal, message: str) -> None:
        super().__init__(message)
        self.reason: PeerRefusal = reason


@dataclass(frozen=True)
class TlsIdentity:
    """What a node presents on the peer channel and the one CA whose certificates it accepts.

    The certificate may be renewed while the node runs (`renew`): every context made from the
    identity presents the new one from its next handshake on."""

    mode: TrustMode
    key: NodeKey
    certificate: x509.Certificate
    trust_anchor: x509.Certificate
    _contexts: "weakref.WeakSet[ssl.SSLContext]" = field(
        default_factory=weakref.WeakSet, compare=False, repr=False
    )

    @property
    def node_id(self) -> str:
        return self.key.node_id

    def renew(self, certificate: x509.Certificate, now: dt.datetime) -> None:
        """Present `certificate` from now on, on every context made from this identity:
        refused, in one line, unless it certifies this node's key under the same anchor."""
        check_own_certificate(certificate, self.key.public_key, self.trust_anchor, now)
        object.__setattr__(self, "certificate", certificate)  # the one field that changes
        for ctx in list(self._contexts):
            _load_own_chain(ctx, self)

    @classmethod
    def open(cls, key: NodeKey, now: dt.datetime) -> "TlsIdentity":
        """CERT-8: certify our own key under the open CA (presets `local` and `testnet`)."""
        ca = open_ca()
        return cls("open", key, issue_node_certificate(ca, key.public_key, now), ca.certificate)

    @classmethod
    def federation(
        cls, key: NodeKey, certificate: x509.Certificate, ca: x509.Certificate, now: dt.datetime
    ) -> "TlsIdentity":
        """CERT-7: a certificate the federation CA issued for our key; refused here, in one
        line, if it is expired, from another CA or for another key."""
        check_own_certificate(certificate, key.public_key, ca, now)
        return cls("federation", key, certificate, ca)


def server_context(identity: TlsIdentity) -> ssl.SSLContext:
    """TLS-1..TLS-4: TLS 1.3 only, client certificate required and chained to the anchor."""
    return _context(ssl.PROTOCOL_TLS_SERVER, identity)


def client_context(identity: TlsIdentity) -> ssl.SSLContext:
    """TLS-1..TLS-4: TLS 1.3 only, presents our certificate, server chain checked against the
    anchor, no hostname check (TLS-5: the node id is the identity, not a DNS name)."""
    return _context(ssl.PROTOCOL_TLS_CLIENT, identity)


def _context(protocol: int, identity: TlsIdentity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(cadata=certificate_pem(identity.trust_anchor).decode("ascii"))
    _load_own_chain(ctx, identity)
    identity._contexts.add(ctx)
    return ctx


def _load_own_chain(ctx: ssl.SSLContext, identity: TlsIdentity) -> None:
    """SSLContext.load_cert_chain reads only files: write the pair to a private (0700)
    temporary directory, load it, and remove it at once."""
    with tempfile.TemporaryDirectory(prefix="fpai-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "node.crt", Path(tmp) / "node.key"
        cert_file.write_bytes(certificate_pem(identity.certificate))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(identity.key.to_pem())
        ctx.load_cert_chain(cert_file, key_file)


def peer_node_id(
    peer: ssl.SSLObject | ssl.SSLSocket | bytes | None, expected: str | None = None
) -> str:
    """TLS-6/TLS-7: the node id the peer's certificate key proves, checked against `expected`.

    `peer` is the connection's SSL object (aiohttp: `transport.get_extra_info("ssl_object")`)
    or the peer certificate in DER. Call it on every accepted and every dialled connection:
    the handshake only shows that the peer holds the key of a certificate the anchor accepts.
    """
    der = peer if isinstance(peer, bytes) or peer is None else peer.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("no_certificate", "peer presented no certificate")
    try:
        node_id = node_id_of_certificate(x509.load_der_x509_certificate(der))
    except (ValueError, CertificateError) as exc:
        raise PeerIdentityError("bad_certificate", f"peer certificate refused: {exc}") from None
    if expected is not None and node_id != expected:
        raise PeerIdentityError(
            "node_id_mismatch", f"peer proved key of node {node_id}, expected {expected}"
        )
    return node_id


# What OpenSSL says of bytes that are no TLS record at all (plain HTTP, a pickle, a port scan)
_NOT_TLS = ("http_request", "https_proxy_request", "wrong_version_number", "record_layer")


def handshake_refusal_reason(exc: BaseException) -> str:
    """A fixed reason code for a refused TLS handshake, for counting refusals (PEER-5)."""
    if isinstance(exc, TimeoutError):
        return "handshake_timeout"
    if not isinstance(exc, ssl.SSLError):
        return "handshake_aborted"
    detail = f"{exc.reason} {getattr(exc, 'verify_message', '')}".lower()
    if "did_not_return_a_certificate" in detail or "certificate required" in detail:
        return "no_certificate"
    if "expired" in detail:
        return "expired"
    if "verify_failed" in detail or "unknown_ca" in detail or "certificate" in detail:
        return "untrusted_certificate"
    if any(sign in detail for sign in _NOT_TLS):
        return "not_tls"
    if "version" in detail or "protocol" in detail:
        return "tls_version"
    return "handshake_failed"
