"""Mutual TLS through real sockets: aiohttp server and client with the node contexts
(specs/0003-transport.md TLS-1..TLS-8). Under TLS 1.3 a refused client sees only a closed
connection, so refusals by the server show up as aiohttp connection errors."""

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from fpai_node.identity import NodeKey
from fpai_node.identity.certs import (
    CertificateAuthority,
    CertificateError,
    certificate_pem,
    create_ca,
    issue_node_certificate,
    open_ca,
)
from fpai_node.identity.tls import (
    PeerIdentityError,
    TlsIdentity,
    client_context,
    peer_node_id,
    server_context,
)

pytestmark = pytest.mark.timeout(30)

NOW = dt.datetime.now(dt.UTC)
TIMEOUT = aiohttp.ClientTimeout(total=5)
CLAIM = "X-FPAI-Node-Id"  # test stand-in for however the peer channel carries a claimed id


@pytest.fixture(scope="module")
def fed_ca() -> CertificateAuthority:
    return create_ca("Federation A", NOW - dt.timedelta(days=30))


def federation_node(ca: CertificateAuthority, key: NodeKey | None = None) -> TlsIdentity:
    key = key or NodeKey.generate()
    cert = issue_node_certificate(ca, key.public_key, NOW)
    return TlsIdentity.federation(key, cert, ca.certificate, NOW)


async def whoami(request: web.Request) -> web.Response:
    """The server side of TLS-6: derive the client's node id, check any claimed id."""
    try:
        node_id = peer_node_id(
            request.transport.get_extra_info("ssl_object") if request.transport else None,
            expected=request.headers.get(CLAIM),
        )
    except PeerIdentityError as exc:
        return web.json_response({"refused": exc.reason}, status=403)
    return web.json_response({"peer": node_id})


@asynccontextmanager
async def serving(identity: TlsIdentity) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(identity))
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}/whoami"
    finally:
        await runner.cleanup()


class CheckingConnector(aiohttp.TCPConnector):
    """Derives the server's node id on each new connection, before a request byte is sent.

    aiohttp 3.14 detaches a response from its connection as soon as a small body has arrived,
    so `resp.connection` cannot be relied on: the check belongs where connections are made.
    """

    def __init__(self, expected_server: str | None) -> None:
        super().__init__()
        self.expected_server = expected_server
        self.server_ids: list[str] = []

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            self.server_ids.append(peer_node_id(ssl_object, self.expected_server))
        except PeerIdentityError:
            transport.close()
            raise
        return transport, protocol


async def call(
    url: str,
    ctx: ssl.SSLContext,
    expected_server: str | None = None,
    claim: str | None = None,
) -> tuple[int, dict[str, str], str]:
    """GET url; returns status, body and the server's node id checked against expected_server."""
    connector = CheckingConnector(expected_server)
    headers = {CLAIM: claim} if claim else {}
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.get(url, ssl=ctx, headers=headers) as resp,
    ):
        body = await resp.json()
    assert len(connector.server_ids) == 1
    return resp.status, body, connector.server_ids[0]


def bare_client_context(anchor: x509.Certificate) -> ssl.SSLContext:
    """A TLS 1.3 client that trusts `anchor` but presents no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=certificate_pem(anchor).decode())
    return ctx


# --- accepted --------------------------------------------------------------------------------


async def test_federation_peers_authenticate_each_other(fed_ca: CertificateAuthority) -> None:
    server, client = federation_node(fed_ca), federation_node(fed_ca)
    async with serving(server) as url:
        status, body, server_id = await call(
            url, client_context(client), server.node_id, claim=client.node_id
        )
    assert (status, body, server_id) == (200, {"peer": client.node_id}, server.node_id)


async def test_open_mode_nodes_with_independent_keys_authenticate_each_other() -> None:
    a, b = TlsIdentity.open(NodeKey.generate(), NOW), TlsIdentity.open(NodeKey.generate(), NOW)
    async with serving(a) as url_a, serving(b) as url_b:
        assert await call(url_a, client_context(b), a.node_id) == (
            200,
            {"peer": b.node_id},
            a.node_id,
        )
        assert await call(url_b, client_context(a), b.node_id) == (
            200,
            {"peer": a.node_id},
            b.node_id,
        )


async def test_negotiates_tls13_with_ed25519(fed_ca: CertificateAuthority) -> None:
    server, client = federation_node(fed_ca), federation_node(fed_ca)
    async with serving(server) as url:
        host, port = url.removeprefix("https://").split("/")[0].split(":")
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=client_context(client)), 5
        )
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.3"
        assert ssl_object.cipher()[1] == "TLSv1.3"
        assert peer_node_id(ssl_object, server.node_id) == server.node_id
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


# --- refused by the server (TLS-4) -------------------------------------------------------------


async def refused_by_server(
    server: TlsIdentity,
    ctx: ssl.SSLContext,
    error: type[aiohttp.ClientError] = aiohttp.ServerDisconnectedError,
) -> None:
    """The client accepts the server, and the server's refusal is all the client sees: under
    TLS 1.3 the client's handshake ends before the server has checked its certificate."""
    async with serving(server) as url:
        with pytest.raises(error):
            await call(url, ctx)


async def test_server_refuses_client_without_certificate(fed_ca: CertificateAuthority) -> None:
    server = federation_node(fed_ca)
    await refused_by_server(server, bare_client_context(fed_ca.certificate))


async def test_open_server_refuses_client_without_certificate() -> None:
    server = TlsIdentity.open(NodeKey.generate(), NOW)
    await refused_by_server(server, bare_client_context(open_ca().certificate))


async def test_server_refuses_certificate_from_another_ca(fed_ca: CertificateAuthority) -> None:
    intruder = federation_node(create_ca("Federation B", NOW))
    # The intruder trusts our CA, so only the server's check can stop it.
    ctx = client_context(intruder)
    ctx.load_verify_locations(cadata=certificate_pem(fed_ca.certificate).decode())
    await refused_by_server(federation_node(fed_ca), ctx)


async def test_federation_server_refuses_open_mode_client(fed_ca: CertificateAuthority) -> None:
    ctx = client_context(TlsIdentity.open(NodeKey.generate(), NOW))
    ctx.load_verify_locations(cadata=certificate_pem(fed_ca.certificate).decode())
    await refused_by_server(federation_node(fed_ca), ctx)


async def test_server_refuses_expired_client_certificate(fed_ca: CertificateAuthority) -> None:
    key = NodeKey.generate()
    old = NOW - dt.timedelta(days=10)
    expired = issue_node_certificate(fed_ca, key.public_key, old, dt.timedelta(days=1))
    with pytest.raises(CertificateError, match="expired"):
        TlsIdentity.federation(key, expired, fed_ca.certificate, NOW)
    # A careless or hostile client skips that check; the server still refuses it.
    ctx = client_context(TlsIdentity("federation", key, expired, fed_ca.certificate))
    await refused_by_server(federation_node(fed_ca), ctx)


async def test_open_server_refuses_expired_client_certificate() -> None:
    key = NodeKey.generate()
    expired = issue_node_certificate(
        open_ca(), key.public_key, NOW - dt.timedelta(days=10), dt.timedelta(days=1)
    )
    ctx = client_context(TlsIdentity("open", key, expired, open_ca().certificate))
    await refused_by_server(TlsIdentity.open(NodeKey.generate(), NOW), ctx)


async def test_open_server_refuses_a_plain_self_signed_certificate() -> None:
    """The experiment of specs/0003-transport.md TLS-9: stdlib ssl cannot accept a client
    certificate that does not chain to its trust store, so open mode needs the open CA."""
    private = Ed25519PrivateKey.generate()
    key = NodeKey.from_private_key(private)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.node_id)])
    self_signed = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(private, None)
    )
    ctx = client_context(TlsIdentity("open", key, self_signed, open_ca().certificate))
    await refused_by_server(TlsIdentity.open(NodeKey.generate(), NOW), ctx)


async def test_server_refuses_tls12(fed_ca: CertificateAuthority) -> None:
    ctx = client_context(federation_node(fed_ca))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    await refused_by_server(federation_node(fed_ca), ctx, aiohttp.ClientConnectorError)


# --- refused by the client (TLS-4, TLS-7) -----------------------------------------------------


async def test_client_refuses_server_from_another_ca(fed_ca: CertificateAuthority) -> None:
    server = federation_node(create_ca("Federation B", NOW))
    async with serving(server) as url:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await call(url, client_context(federation_node(fed_ca)))


async def test_client_refuses_expired_server_certificate() -> None:
    key = NodeKey.generate()
    expired = issue_node_certificate(
        open_ca(), key.public_key, NOW - dt.timedelta(days=10), dt.timedelta(days=1)
    )
    async with serving(TlsIdentity("open", key, expired, open_ca().certificate)) as url:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await call(url, client_context(TlsIdentity.open(NodeKey.generate(), NOW)))


# --- the key must match the claimed / expected node id (TLS-6, TLS-7) ------------------------


async def test_client_claiming_another_node_id_is_refused() -> None:
    victim, mallory = NodeKey.generate(), TlsIdentity.open(NodeKey.generate(), NOW)
    server = TlsIdentity.open(NodeKey.generate(), NOW)
    async with serving(server) as url:
        status, body, _ = await call(url, client_context(mallory), claim=victim.node_id)
    assert (status, body) == (403, {"refused": "node_id_mismatch"})


async def test_certificate_naming_another_node_proves_only_its_own_key() -> None:
    """A certificate whose CN/SAN carry the victim's id but whose key is mallory's."""
    victim, mallory = NodeKey.generate(), NodeKey.generate()
    lying = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, victim.node_id)]))
        .issuer_name(open_ca().certificate.subject)
        .public_key(mallory.private_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(victim.node_id)]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(open_ca().private_key.public_key()),
            False,
        )
        .sign(open_ca().private_key, None)
    )
    server = TlsIdentity("open", mallory, lying, open_ca().certificate)
    client = client_context(TlsIdentity.open(NodeKey.generate(), NOW))
    async with serving(server) as url:
        with pytest.raises(PeerIdentityError) as refused:
            await call(url, client, expected_server=victim.node_id)
        assert refused.value.reason == "node_id_mismatch"
        assert (await call(url, client))[2] == mallory.node_id


def test_peer_node_id_without_certificate() -> None:
    with pytest.raises(PeerIdentityError) as refused:
        peer_node_id(None)
    assert refused.value.reason == "no_certificate"
    with pytest.raises(PeerIdentityError) as corrupt:
        peer_node_id(b"\x30\x03junk")
    assert corrupt.value.reason == "bad_certificate"
