"""Node certificates, the federation CA and the open CA (specs/0003-transport.md CERT-1..CERT-9)."""

import datetime as dt
import hashlib
import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from fpai_node.cli.federation_cmds import federation_app
from fpai_node.errors import FpaiError
from fpai_node.home import Home
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import (
    CLOCK_SKEW,
    NODE_CERT_VALIDITY,
    OPEN_CA_NAME,
    CertificateAuthority,
    CertificateError,
    certificate_pem,
    check_node_certificate,
    check_own_certificate,
    create_ca,
    issue_node_certificate,
    load_ca,
    load_certificate,
    node_id_of_certificate,
    open_ca,
    parse_certificate,
    parse_public_key,
    public_key_from_csr,
    save_ca,
    save_certificate,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ALICE = NodeKey.from_seed(bytes(range(32)))  # specs/0001-identity.md worked example
ALICE_ID = "fpn14dy3dn2fzm3blwzovxh7kdyvsxljdh7v"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca("Test federation", NOW - dt.timedelta(days=1))


def foreign_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ALICE_ID)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# --- profile ---------------------------------------------------------------------------------


def test_node_certificate_profile(ca: CertificateAuthority) -> None:
    cert = issue_node_certificate(ca, ALICE.public_key, NOW)
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    assert public.public_bytes_raw() == ALICE.public_key
    assert cert.subject.rfc4514_string() == f"CN={ALICE_ID}"
    assert cert.issuer == ca.certificate.subject
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + NODE_CERT_VALIDITY
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [ALICE_ID, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("::1"),
    ]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.certificate)


def test_ca_profile(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    assert ca.name == "Test federation"
    assert cert.issuer == cert.subject
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and not usage.digital_signature
    assert ca.private_key.public_key() == cert.public_key()


def test_node_validity_is_capped_by_the_ca() -> None:
    short = create_ca("Short", NOW, validity=dt.timedelta(days=10))
    cert = issue_node_certificate(short, ALICE.public_key, NOW)
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_open_ca_is_the_published_constant() -> None:
    ca = open_ca()
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    assert ca.name == OPEN_CA_NAME
    assert ca.private_key.private_bytes_raw() == hashlib.sha256(b"FPAI-OPEN-CA-V1").digest()
    # specs/0003-transport.md CERT-8: every implementation builds these exact bytes.
    assert hashlib.sha256(der).hexdigest() == (
        "4e2685371b912f051409a7d59ca2bba384145455d4dffdda218c0e9e1ce5f5d5"
    )


# --- node id from a certificate ---------------------------------------------------------------


def test_node_id_comes_from_the_key_not_the_names(ca: CertificateAuthority) -> None:
    assert node_id_of_certificate(issue_node_certificate(ca, ALICE.public_key, NOW)) == ALICE_ID
    mallory = Ed25519PrivateKey.generate()
    lying = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ALICE_ID)]))
        .issuer_name(ca.certificate.subject)
        .public_key(mallory.public_key())
        .serial_number(2)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ALICE_ID)]), critical=False)
        .sign(ca.private_key, None)
    )
    assert node_id_of_certificate(lying) == NodeKey.from_private_key(mallory).node_id != ALICE_ID


def test_non_ed25519_certificate_names_no_node() -> None:
    with pytest.raises(CertificateError, match="not Ed25519"):
        node_id_of_certificate(foreign_certificate(ec.generate_private_key(ec.SECP256R1())))


# --- checks -------------------------------------------------------------------------------------


def test_check_accepts_a_good_certificate(ca: CertificateAuthority) -> None:
    cert = issue_node_certificate(ca, ALICE.public_key, NOW)
    assert check_node_certificate(cert, ca.certificate, NOW) == ALICE_ID
    assert check_own_certificate(cert, ALICE.public_key, ca.certificate, NOW) == ALICE_ID


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (NOW + NODE_CERT_VALIDITY + dt.timedelta(seconds=1), "expired at 2027-06-01T12:00:00Z"),
        (NOW - dt.timedelta(hours=1), "not valid before 2026-06-01T11:55:00Z"),
    ],
)
def test_check_refuses_outside_validity(
    ca: CertificateAuthority, at: dt.datetime, message: str
) -> None:
    cert = issue_node_certificate(ca, ALICE.public_key, NOW)
    with pytest.raises(CertificateError, match=message):
        check_node_certificate(cert, ca.certificate, at)


def test_check_refuses_another_ca(ca: CertificateAuthority) -> None:
    cert = issue_node_certificate(create_ca("Other", NOW), ALICE.public_key, NOW)
    with pytest.raises(CertificateError, match="not issued by CA 'Test federation'"):
        check_node_certificate(cert, ca.certificate, NOW)


def test_check_refuses_someone_elses_certificate(ca: CertificateAuthority) -> None:
    cert = issue_node_certificate(ca, NodeKey.generate().public_key, NOW)
    with pytest.raises(CertificateError, match=f"this node's key is {ALICE_ID}"):
        check_own_certificate(cert, ALICE.public_key, ca.certificate, NOW)


def test_expired_ca_issues_nothing() -> None:
    old = create_ca("Old", NOW - dt.timedelta(days=30), validity=dt.timedelta(days=1))
    with pytest.raises(CertificateError, match="CA 'Old' expired"):
        issue_node_certificate(old, ALICE.public_key, NOW)


# --- public keys and CSRs -----------------------------------------------------------------------


def test_public_key_from_hex_and_pem() -> None:
    pem = ALICE.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_public_key(ALICE.public_key.hex()) == ALICE.public_key
    assert parse_public_key(f"  {ALICE.public_key.hex().upper()}\n") == ALICE.public_key
    assert parse_public_key(pem.decode()) == ALICE.public_key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zz", "neither hex nor PEM"),
        ("abcd", "32 bytes, got 2"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "not a readable PEM"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "not an Ed25519 key",
        ),
    ],
)
def test_bad_public_keys(text: str, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        parse_public_key(text)


def test_csr_gives_its_key_and_ignores_its_names(ca: CertificateAuthority) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anything")]))
        .sign(ALICE.private_key, None)
    )
    key = public_key_from_csr(csr.public_bytes(serialization.Encoding.PEM))
    assert key == ALICE.public_key
    assert issue_node_certificate(ca, key, NOW).subject.rfc4514_string() == f"CN={ALICE_ID}"


def test_bad_csrs() -> None:
    with pytest.raises(CertificateError, match="not a readable PEM certificate request"):
        public_key_from_csr(b"junk")
    ec_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="CSR key is not Ed25519"):
        public_key_from_csr(ec_csr.public_bytes(serialization.Encoding.PEM))


# --- files -----------------------------------------------------------------------------------


def test_ca_round_trip_and_modes(ca: CertificateAuthority, tmp_path: Path) -> None:
    save_ca(tmp_path / "ca", ca)
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    loaded = load_ca(tmp_path / "ca")
    assert loaded.certificate == ca.certificate
    assert loaded.private_key.private_bytes_raw() == ca.private_key.private_bytes_raw()
    with pytest.raises(CertificateError, match="CA already exists"):
        save_ca(tmp_path / "ca", ca)


def test_load_ca_errors(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no CA key at"):
        load_ca(tmp_path)
    save_ca(tmp_path, ca)
    key_file = tmp_path / "ca.key"
    key_file.chmod(0o644)
    with pytest.raises(CertificateError, match="accessible by other users"):
        load_ca(tmp_path)
    key_file.chmod(0o600)
    (tmp_path / "ca.crt").write_bytes(certificate_pem(create_ca("Other", NOW).certificate))
    with pytest.raises(CertificateError, match="do not match"):
        load_ca(tmp_path)
    key_file.write_bytes(b"junk")
    with pytest.raises(CertificateError, match="corrupt"):
        load_ca(tmp_path)
    key_file.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(CertificateError, match="not an Ed25519 key"):
        load_ca(tmp_path)


def test_certificate_files(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert = issue_node_certificate(ca, ALICE.public_key, NOW)
    path = tmp_path / "certs" / "node.crt"
    save_certificate(path, cert)
    assert load_certificate(path) == cert
    with pytest.raises(CertificateError, match="already exists"):
        save_certificate(path, cert)
    save_certificate(path, ca.certificate, overwrite=True)
    assert load_certificate(path) == ca.certificate
    with pytest.raises(CertificateError, match="no certificate at"):
        load_certificate(tmp_path / "missing.crt")
    with pytest.raises(CertificateError, match="corrupt: not a PEM certificate"):
        parse_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# --- the `federation` commands (tested on the sub-app; registration is in cli/__init__) -------


def invoke(*args: str) -> str:
    result = CliRunner().invoke(federation_app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_federation_commands(tmp_path: Path) -> None:
    ca_dir, node_home, out = tmp_path / "ca", tmp_path / "node", tmp_path / "node.crt"
    assert "created CA 'FPAI federation CA'" in invoke("create", "--dir", str(ca_dir))
    key = Home(node_home).init("federation")
    issued = invoke("issue", "--ca-dir", str(ca_dir), "--home", str(node_home), "--out", str(out))
    assert f"for node {key.node_id}" in issued
    cert = load_certificate(out)
    assert check_own_certificate(cert, key.public_key, load_ca(ca_dir).certificate, _now()) == (
        key.node_id
    )
    shown = json.loads(invoke("show-cert", "--json", str(out)))
    assert shown["node_id"] == key.node_id
    assert shown["issuer"] == "CN=FPAI federation CA"
    assert shown["state"] == "valid"
    by_key = tmp_path / "alice.crt"
    invoke(
        "issue",
        "--ca-dir",
        str(ca_dir),
        "--public-key",
        ALICE.public_key.hex(),
        "--out",
        str(by_key),
        "--days",
        "2",
    )
    assert node_id_of_certificate(load_certificate(by_key)) == ALICE_ID
    assert f"node_id    {ALICE_ID}" in invoke("show-cert", str(by_key))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--dir", "{ca}"), "CA already exists"),
        (("issue", "--ca-dir", "{ca}", "--out", "{tmp}/x.crt"), "exactly one of"),
        (
            ("issue", "--ca-dir", "{tmp}/none", "--public-key", "00" * 32, "--out", "{tmp}/x.crt"),
            "no CA key at",
        ),
        (
            ("issue", "--ca-dir", "{ca}", "--csr", "{tmp}/none.csr", "--out", "{tmp}/x.crt"),
            "cannot read CSR",
        ),
        (("show-cert", "{ca}/ca.key"), "corrupt: not a PEM certificate"),
    ],
)
def test_federation_command_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    ca_dir = tmp_path / "ca"
    invoke("create", "--dir", str(ca_dir))
    argv = [a.format(ca=ca_dir, tmp=tmp_path) for a in args]
    with pytest.raises(FpaiError, match=message):
        CliRunner().invoke(federation_app, argv, catch_exceptions=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
