"""The peer channel's server in process, over real mutual TLS on loopback (specs/0003
PEER-3, PEER-7, PEER-8): its answers, and the limits its routes share or keep apart."""

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context
from fpai_node.peer import server as peer_server
from fpai_node.peer.server import FRAME_PATH, PeerServer
from fpai_node.service import FrameRefused, RpcRoute, StreamRoute
from fpai_node.testing.nodeproc import until
from fpai_node.wire import codec

pytestmark = pytest.mark.timeout(30)
SERVER = NodeKey.from_seed(bytes([50]) * 32)
CALLER = NodeKey.from_seed(bytes([51]) * 32)
ECHO_PATH = "/fpai/peer/v1/test/echo"
STREAM_PATH = "/fpai/peer/v1/test/stream"
STREAM_BODY_LIMIT = 8
BURST = 3  # the frame route's per-peer burst in these tests (the node's is 400)


async def frame_handler(peer: str, body: bytes) -> bytes | None:
    if body == b"refuse me":
        raise FrameRefused("malformed")
    return None


async def echo(peer: str, body: bytes) -> bytes:
    return codec.encode({"body": body, "caller": peer})


async def chunks(peer: str, body: bytes, request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"one,", b"two,", b"three"):
        await response.write(part)
    await response.write_eof()
    return response


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PeerServer]:
    monkeypatch.setattr(peer_server, "BURST", float(BURST))
    monkeypatch.setattr(peer_server, "RATE_PER_S", 0.001)  # no refill within a test
    routes = [
        RpcRoute(FRAME_PATH, frame_handler),
        RpcRoute(ECHO_PATH, echo),
        StreamRoute(STREAM_PATH, chunks, max_body_bytes=STREAM_BODY_LIMIT, rate_per_s=1000.0),
    ]
    running = PeerServer(TlsIdentity.open(SERVER, dt.datetime.now(dt.UTC)), routes)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    await running.start(sock)
    yield running
    await running.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    identity = TlsIdentity.open(CALLER, dt.datetime.now(dt.UTC))
    connector = aiohttp.TCPConnector(ssl=client_context(identity))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


async def post(
    session: aiohttp.ClientSession, server: PeerServer, path: str, body: bytes
) -> tuple[int, str, bytes]:
    async with session.post(f"https://{server.address}{path}", data=body) as response:
        return response.status, response.content_type, await response.read()


async def test_a_frame_is_answered_204_400_with_its_reason_or_413(
    server: PeerServer, session: aiohttp.ClientSession
) -> None:
    """PEER-3: `204` for an accepted frame, `400` with the reason code as a plain-text body for
    a refused one, `413` for a body over 1,048,576 bytes."""
    assert (await post(session, server, FRAME_PATH, b"fine"))[0] == 204
    refused = await post(session, server, FRAME_PATH, b"refuse me")
    assert refused == (400, "text/plain", b"malformed")
    oversized = b"\x00" * (1_048_576 + 1)
    status, _, reason = await post(session, server, FRAME_PATH, oversized)
    assert (status, reason) == (413, b"oversized")
    assert server.refusals == {"malformed": 1, "oversized": 1}


async def test_a_request_route_answers_200_with_msgpack_for_the_proven_caller(
    server: PeerServer, session: aiohttp.ClientSession
) -> None:
    """PEER-7: the answer is `200`, `application/msgpack`, and the handler is told the caller
    its certificate proves."""
    status, content_type, body = await post(session, server, ECHO_PATH, b"hello")
    assert (status, content_type) == (200, "application/msgpack")
    assert codec.decode(body) == {"body": b"hello", "caller": CALLER.node_id}


async def test_request_routes_share_the_frame_routes_rate_and_streams_keep_their_own(
    server: PeerServer, session: aiohttp.ClientSession
) -> None:
    """PEER-7: a request route shares the frame route's per-peer rate (`429` once it is used
    up, PEER-3); PEER-8: a streaming route has its own rate, so it still answers."""
    for _ in range(BURST - 1):
        assert (await post(session, server, FRAME_PATH, b"fine"))[0] == 204
    assert (await post(session, server, ECHO_PATH, b"x"))[0] == 200
    assert (await post(session, server, ECHO_PATH, b"x"))[:1] == (429,)
    assert (await post(session, server, FRAME_PATH, b"fine"))[0] == 429
    assert (await post(session, server, STREAM_PATH, b"x"))[0] == 200
    assert server.refusals["rate_limited"] == 2


async def test_a_streaming_route_has_its_own_body_limit_and_answers_a_stream(
    server: PeerServer, session: aiohttp.ClientSession
) -> None:
    """PEER-8: the streaming route's own body limit (not the frame route's) and a chunked
    answer in the route's own format."""
    over = b"x" * (STREAM_BODY_LIMIT + 1)
    assert (await post(session, server, STREAM_PATH, over))[0] == 413
    assert (await post(session, server, ECHO_PATH, over))[0] == 200  # the frame route's limit
    async with session.post(f"https://{server.address}{STREAM_PATH}", data=b"x") as response:
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == b"one,two,three"


async def caller_session() -> aiohttp.ClientSession:
    identity = TlsIdentity.open(CALLER, dt.datetime.now(dt.UTC))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(identity)))


async def test_one_address_holds_at_most_its_share_of_connections(
    server: PeerServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEER-5: a connection past the address's share is closed before its handshake, and the
    refusal is counted; the connection it holds is still served."""
    monkeypatch.setattr(peer_server, "MAX_CONNECTIONS_PER_ADDRESS", 1)
    assert (await post(session, server, ECHO_PATH, b"kept"))[0] == 200  # held by keep-alive
    async with await caller_session() as second:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(second, server, ECHO_PATH, b"one too many")
    assert server.refusals == {"too_many_connections_from_address": 1}
    assert (await post(session, server, ECHO_PATH, b"still"))[0] == 200


async def test_a_connection_closed_twice_does_not_stop_the_next_from_being_admitted(
    server: PeerServer, session: aiohttp.ClientSession
) -> None:
    """asyncio's TLS transport, closed a second time, lets go of its SSL protocol while aiohttp
    still lists the connection; asking it for its address then raised inside `connection_made`,
    and every new peer connection hung until the old one was gone (a CI failure: shards did
    not move for 30 s after a replica was killed)."""
    assert (await post(session, server, ECHO_PATH, b"x"))[0] == 200
    web_server = server._runner.server if server._runner is not None else None
    assert web_server is not None
    [held] = web_server.connections
    assert held.transport is not None
    held.transport.close()
    held.transport.close()
    holder = object()
    assert server.admits_connection(web_server, holder, ("127.0.0.1", 1)) is None
    server.handshakes.release(holder)
    async with await caller_session() as fresh:
        assert (await post(fresh, server, ECHO_PATH, b"after"))[0] == 200


async def test_a_silent_connection_times_out_and_frees_its_slot(
    server: PeerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEER-5: a connection that never says hello holds a handshake slot for the handshake
    timeout only; then it is counted, closed, and its slot and task are gone."""
    monkeypatch.setattr(peer_server, "HANDSHAKE_TIMEOUT_S", 0.2)
    host, port = server.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await until(lambda: len(server.handshakes) == 1)
    assert await reader.read() == b""  # closed by the server
    writer.close()
    await until(lambda: not server._handshaking)
    assert server.refusals == {"handshake_timeout": 1}
    assert len(server.handshakes) == 0


async def test_stopping_closes_the_connections_still_in_their_handshake(
    server: PeerServer,
) -> None:
    host, port = server.address.rsplit(":", 1)
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    await until(lambda: len(server.handshakes) == 3)
    await server.stop()
    for reader, writer in connections:
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
    assert len(server.handshakes) == 0
    assert not server._handshaking
