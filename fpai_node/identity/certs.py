"""X.509 certificates bound to node keys (specs/0003-transport.md, CERT-1..CERT-9).

A node certificate's subject public key IS the node's Ed25519 key, so the TLS 1.3 handshake
(CertificateVerify) proves possession of the node key and the peer's node id follows from the
certificate by ID-2. The issuer only decides whether OpenSSL lets the handshake finish: the
federation CA in private federations, the open CA (whose private key is public) otherwise.

Everything here is pure except the explicit load/save functions; time is an argument.
"""

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fpai_node.errors import IdentityError
from fpai_node.identity.nodeid import PUBLIC_KEY_LENGTH, node_id_from_public_key

# A year: a federation operator reissues by hand, and yearly rotation bounds a stolen
# certificate's life without making the operator's toil noticeable. Open-mode nodes re-certify
# themselves on every start, so the length only matters for very long-running processes.
NODE_CERT_VALIDITY = dt.timedelta(days=365)
# Ten years: replacing a federation CA means reissuing every node certificate.
CA_CERT_VALIDITY = dt.timedelta(days=3650)
# Backdate notBefore so a peer whose clock runs a few minutes slow accepts a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)
# CERT-3: names that let loopback and tooling connect by address; identity never rests on them.
LOOPBACK_NAMES: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
    x509.IPAddress(ipaddress.IPv6Address("::1")),
)

# CERT-8: the open CA. Its private key is derived from a published seed, so anyone can certify
# any key with it; it exists only because stdlib ssl cannot accept a client certificate that
# does not chain to a trust anchor. Every field is fixed, so every node builds the same bytes.
OPEN_CA_SEED = hashlib.sha256(b"FPAI-OPEN-CA-V1").digest()
OPEN_CA_NAME = "FPAI open CA v1 (private key is public; certifies nothing)"
OPEN_CA_SERIAL = 1
OPEN_CA_NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
OPEN_CA_NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"


class CertificateError(IdentityError):
    """A missing, corrupt, expired or mis-issued certificate, CA or public key."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and its self-signed certificate: the federation CA or the open CA."""

    private_key: Ed25519PrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def name(self) -> str:
        return _common_name(self.certificate) or self.certificate.subject.rfc4514_string()


def create_ca(
    name: str, now: dt.datetime, validity: dt.timedelta = CA_CERT_VALIDITY
) -> CertificateAuthority:
    """CERT-7: a new federation CA with its own Ed25519 key (never a node key)."""
    key = Ed25519PrivateKey.generate()
    return CertificateAuthority(key, _ca_certificate(key, name, now - CLOCK_SKEW, now + validity))


@lru_cache(maxsize=1)
def open_ca() -> CertificateAuthority:
    """CERT-8: the open CA, rebuilt byte-for-byte from its published parameters."""
    key = Ed25519PrivateKey.from_private_bytes(OPEN_CA_SEED)
    cert = _ca_certificate(
        key, OPEN_CA_NAME, OPEN_CA_NOT_BEFORE, OPEN_CA_NOT_AFTER, serial=OPEN_CA_SERIAL
    )
    return CertificateAuthority(key, cert)


def _ca_certificate(
    key: Ed25519PrivateKey,
    name: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # path_length=0: node certificates are issued directly; no intermediate CA is accepted.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, algorithm=None)


def issue_node_certificate(
    ca: CertificateAuthority,
    public_key: bytes,
    now: dt.datetime,
    validity: dt.timedelta = NODE_CERT_VALIDITY,
) -> x509.Certificate:
    """CERT-1..CERT-5: certify a node's Ed25519 public key (32 raw bytes) under `ca`."""
    node_id = _node_id(public_key)
    check_validity(ca.certificate, now, f"CA {ca.name!r}")
    ca_public = ca.private_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca.certificate.subject)
        .public_key(Ed25519PublicKey.from_public_bytes(public_key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca.certificate.not_valid_after_utc))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(node_id), *LOOPBACK_NAMES]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
    )
    return builder.sign(ca.private_key, algorithm=None)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _node_id(public_key: bytes) -> str:
    if len(public_key) != PUBLIC_KEY_LENGTH:
        raise CertificateError(
            f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes, got {len(public_key)}"
        )
    return node_id_from_public_key(public_key)


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


# --- node ids and checks -------------------------------------------------------------------


def raw_public_key(cert: x509.Certificate) -> bytes:
    """CERT-1: the certificate's 32-byte Ed25519 key; any other key type is refused."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError("certificate has an unreadable public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CertificateError(
            f"certificate key is {type(key).__name__}, not Ed25519: it cannot name a node"
        )
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def node_id_of_certificate(cert: x509.Certificate) -> str:
    """CERT-6: the node id of the certificate's key (ID-2). Subject and SAN are never trusted."""
    return node_id_from_public_key(raw_public_key(cert))


def check_validity(cert: x509.Certificate, now: dt.datetime, what: str = "certificate") -> None:
    """Refuse a certificate outside its validity period at `now`."""
    if now < cert.not_valid_before_utc:
        raise CertificateError(f"{what} is not valid before {_iso(cert.not_valid_before_utc)}")
    if now > cert.not_valid_after_utc:
        raise CertificateError(f"{what} expired at {_iso(cert.not_valid_after_utc)}")


def check_node_certificate(
    cert: x509.Certificate, ca_cert: x509.Certificate, now: dt.datetime
) -> str:
    """The checks a peer will make (CERT-1, CERT-6, TLS-4): issued by `ca_cert`, valid, Ed25519.

    Returns the node id. A node runs this on its own certificate at start so that a bad one is
    reported in one line instead of as anonymous handshake failures at its peers.
    """
    node_id = node_id_of_certificate(cert)
    check_validity(ca_cert, now, "CA certificate")
    check_validity(cert, now, f"certificate of {node_id}")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError(
            f"certificate of {node_id} was not issued by CA {_common_name(ca_cert)!r}"
        ) from None
    return node_id


def check_own_certificate(
    cert: x509.Certificate, public_key: bytes, ca_cert: x509.Certificate, now: dt.datetime
) -> str:
    """check_node_certificate, plus: the certificate certifies this node's key (CERT-1)."""
    node_id = check_node_certificate(cert, ca_cert, now)
    expected = _node_id(public_key)
    if node_id != expected:
        raise CertificateError(
            f"certificate is for node {node_id}, but this node's key is {expected}"
        )
    return node_id


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- public keys from user input -----------------------------------------------------------


def parse_public_key(text: str) -> bytes:
    """A node public key given as 64 hex digits or as a PEM SubjectPublicKeyInfo."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm):
            raise CertificateError("public key is not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise CertificateError("public key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CertificateError("public key is neither hex nor PEM") from None
    _node_id(raw)
    return raw


def public_key_from_csr(data: bytes) -> bytes:
    """The node key of a PEM CSR, after checking the CSR is signed by that key (proof of
    possession); the CSR's names are ignored, since issue_node_certificate sets them."""
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        raise CertificateError("CSR is not a readable PEM certificate request") from None
    key = csr.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise CertificateError("CSR key is not Ed25519: it cannot name a node")
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature is invalid")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- PEM files -----------------------------------------------------------------------------


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def parse_certificate(data: bytes, source: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{source} is corrupt: not a PEM certificate") from None


def load_certificate(path: Path) -> x509.Certificate:
    return parse_certificate(_read(path, "certificate"), f"certificate {path}")


def save_certificate(path: Path, cert: x509.Certificate, *, overwrite: bool = False) -> None:
    """Write a certificate (public: mode 0644); refuse to replace a file unless told to."""
    _write(path, certificate_pem(cert), 0o644, overwrite=overwrite, what="certificate")


def save_ca(directory: Path, ca: CertificateAuthority) -> None:
    """CERT-7: `ca.key` (0600) and `ca.crt` in `directory`; never replace an existing CA."""
    for name in (CA_KEY_FILE, CA_CERT_FILE):
        if (directory / name).exists():
            raise CertificateError(
                f"a federation CA already exists in {directory}; refusing to overwrite it"
            )
    key_pem = ca.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(directory / CA_KEY_FILE, key_pem, 0o600, overwrite=False, what="CA key")
    save_certificate(directory / CA_CERT_FILE, ca.certificate)


def load_ca(directory: Path) -> CertificateAuthority:
    """A CA saved by save_ca, checking that the key is private, Ed25519 and the cert's own."""
    key_path = directory / CA_KEY_FILE
    data = _read(key_path, "CA key")
    if key_path.stat().st_mode & 0o077:
        raise CertificateError(
            f"CA key {key_path} is accessible by other users; run `chmod 600 {key_path}`"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateError(f"CA key {key_path} is corrupt: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CertificateError(f"CA key {key_path} is not an Ed25519 key")
    cert = load_certificate(directory / CA_CERT_FILE)
    if cert.public_key() != key.public_key():
        raise CertificateError(f"CA key and certificate in {directory} do not match")
    return CertificateAuthority(key, cert)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"no {what} at {path}") from None
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror}") from None


def _write(path: Path, data: bytes, mode: int, *, overwrite: bool, what: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise CertificateError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CertificateError(f"cannot write {what} {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
