"""`federation create|issue|show-cert`: run a private federation's CA (specs/0003-transport.md)."""

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fpai_node.cli.node_cmds import JsonOption, home_of
from fpai_node.errors import ConfigError
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CertificateError,
    check_validity,
    create_ca,
    issue_node_certificate,
    load_ca,
    load_certificate,
    node_id_of_certificate,
    parse_public_key,
    public_key_from_csr,
    save_ca,
    save_certificate,
)

DEFAULT_CA_NAME = "FPAI federation CA"

federation_app = typer.Typer(
    name="federation",
    help="Run a private federation's certificate authority.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@federation_app.command("create")
def create(
    directory: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where to write ca.key and ca.crt")
    ],
    name: Annotated[str, typer.Option("--name", help="The CA's common name")] = DEFAULT_CA_NAME,
) -> None:
    """Create a federation CA: a new Ed25519 CA key (mode 0600) and its certificate."""
    ca = create_ca(name, _now())
    save_ca(directory, ca)
    typer.echo(f"created CA {ca.name!r} in {directory}")
    typer.echo(f"key         {directory / CA_KEY_FILE} (keep it offline; mode 0600)")
    typer.echo(f"certificate {directory / CA_CERT_FILE} (give it to every node)")
    typer.echo(f"sha256      {_fingerprint(ca.certificate)}")


@federation_app.command("issue")
def issue(
    ca_dir: Annotated[
        Path, typer.Option("--ca-dir", metavar="DIR", help="The CA made by `federation create`")
    ],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Certificate to write")],
    home: Annotated[
        Path | None, typer.Option("--home", metavar="DIR", help="Certify this node home's key")
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", metavar="HEX", help="Certify this public key (hex or PEM)"),
    ] = None,
    csr: Annotated[
        Path | None, typer.Option("--csr", metavar="FILE", help="Certify the key of this CSR")
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Validity in days (capped by the CA's)")
    ] = 365,
) -> None:
    """Sign a node certificate for one node key with the federation CA."""
    key = _node_public_key(home, public_key, csr)
    ca = load_ca(ca_dir)
    cert = issue_node_certificate(ca, key, _now(), dt.timedelta(days=days))
    save_certificate(out, cert)
    typer.echo(f"issued {out} for node {node_id_of_certificate(cert)}")
    typer.echo(f"valid until {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


def _node_public_key(home: Path | None, public_key: str | None, csr: Path | None) -> bytes:
    if sum(source is not None for source in (home, public_key, csr)) != 1:
        raise ConfigError("give exactly one of --home, --public-key or --csr")
    if home is not None:
        return NodeKey.load(home_of(home).key_file).public_key
    if public_key is not None:
        return parse_public_key(public_key)
    assert csr is not None
    try:
        return public_key_from_csr(csr.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read CSR {csr}: {exc.strerror}") from None


@federation_app.command("show-cert")
def show_cert(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A PEM node certificate")],
    as_json: JsonOption = False,
) -> None:
    """Print a certificate's node id (from its key), issuer and validity."""
    cert = load_certificate(file)
    try:
        check_validity(cert, _now())
        state = "valid"
    except CertificateError as exc:
        state = str(exc)
    info = {
        "node_id": node_id_of_certificate(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
        "not_after": f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
        "state": state,
        "sha256": _fingerprint(cert),
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for label, value in info.items():
        typer.echo(f"{label:<11}{value}")


def register(app: typer.Typer) -> None:
    app.add_typer(federation_app)
