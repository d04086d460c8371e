"""One non-blocking mutual-TLS 1.3 connection carrying length-prefixed frames (RAFT-2).

Driven by readiness events from a poller the owner runs (pysyncobj's, in its tick thread): the
owner calls `on_event` when the socket is readable or writable and subscribes for the events
`wants_write` asks for. Everything happens in that one thread, so there is no locking.
"""

import errno
import socket
import ssl
import struct
import time
from collections.abc import Callable
from enum import Enum

from fpai_node.identity.tls import handshake_refusal_reason

_LENGTH = struct.Struct(">I")
MAX_BUFFERED = 64 << 20  # a peer that stops reading is dropped before it costs real memory
HANDSHAKE_TIMEOUT_S = 10.0  # matches the peer channel (specs/0003)


class StreamState(Enum):
    CONNECTING = "connecting"
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


_ALIVE = frozenset({StreamState.CONNECTING, StreamState.HANDSHAKE, StreamState.OPEN})
_NOT_OPEN = frozenset(StreamState) - {StreamState.OPEN}


class TlsStream:
    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        max_frame: int,
        on_open: Callable[["TlsStream", bytes], None],
        on_frame: Callable[["TlsStream", bytes], None],
        on_close: Callable[["TlsStream", str], None],
    ) -> None:
        self.fileno = sock.fileno()
        self.state = StreamState.CONNECTING if not server_side else StreamState.HANDSHAKE
        self.deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        self._raw = sock
        self._context = context
        self._server_side = server_side
        self._tls: ssl.SSLSocket | None = None
        self._max_frame = max_frame
        self._on_open = on_open
        self._on_frame = on_frame
        self._on_close = on_close
        self._out = bytearray()
        self._in = bytearray()
        self._handshake_wants_write = False
        if server_side:
            self._wrap()

    @classmethod
    def dial(
        cls,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        max_frame: int,
        on_open: Callable[["TlsStream", bytes], None],
        on_frame: Callable[["TlsStream", bytes], None],
        on_close: Callable[["TlsStream", str], None],
    ) -> "TlsStream":
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        code = sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            raise OSError(code, f"cannot connect to {host}:{port}")
        return cls(
            sock,
            context,
            server_side=False,
            max_frame=max_frame,
            on_open=on_open,
            on_frame=on_frame,
            on_close=on_close,
        )

    @property
    def wants_write(self) -> bool:
        return (
            self.state is StreamState.CONNECTING
            or self._handshake_wants_write
            or (self.state is StreamState.OPEN and bool(self._out))
        )

    def send(self, frame: bytes) -> bool:
        """Queue one frame; False if the stream is closed (the frame is dropped)."""
        if self.state is StreamState.CLOSED:
            return False
        self._out += _LENGTH.pack(len(frame))
        self._out += frame
        if len(self._out) > MAX_BUFFERED:
            self.close("peer_not_reading")
            return False
        if self.state is StreamState.OPEN:
            self._flush()
        return self.state in _ALIVE

    def on_event(self, readable: bool, writable: bool, error: bool) -> None:
        if self.state is StreamState.CLOSED:
            return
        if error and self.state is StreamState.CONNECTING:
            self.close("unreachable")
            return
        if error and self.state is StreamState.HANDSHAKE:
            self.close("handshake_failed")
            return
        if self.state is StreamState.CONNECTING:
            if not (readable or writable):
                return
            if self._raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.close("unreachable")
                return
            self.state = StreamState.HANDSHAKE
            try:
                self._wrap()
            except (ssl.SSLError, OSError):  # reset right after connecting
                self.close("handshake_aborted")
                return
        if self.state is StreamState.HANDSHAKE:
            self._handshake()
            if self.state in _NOT_OPEN:
                return
        self._flush()
        self._read()
        if error and self.state is StreamState.OPEN:
            self.close("connection_error")

    def check_deadline(self, now: float) -> None:
        if self.state in (StreamState.CONNECTING, StreamState.HANDSHAKE) and now > self.deadline:
            self.close("handshake_timeout")

    def close(self, reason: str) -> None:
        if self.state is StreamState.CLOSED:
            return
        self.state = StreamState.CLOSED
        self._out.clear()
        (self._tls or self._raw).close()
        self._on_close(self, reason)

    def _wrap(self) -> None:
        self._tls = self._context.wrap_socket(
            self._raw, server_side=self._server_side, do_handshake_on_connect=False
        )

    def _handshake(self) -> None:
        assert self._tls is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._handshake_wants_write = False
            return
        except ssl.SSLWantWriteError:
            self._handshake_wants_write = True
            return
        except (ssl.SSLError, OSError) as exc:
            self.close(handshake_refusal_reason(exc))
            return
        self._handshake_wants_write = False
        self.state = StreamState.OPEN
        self._on_open(self, self._tls.getpeercert(binary_form=True) or b"")

    def _flush(self) -> None:
        assert self._tls is not None
        while self._out and self.state is StreamState.OPEN:
            try:
                sent = self._tls.send(self._out)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ssl.SSLError, OSError):
                self.close("connection_error")
                return
            del self._out[:sent]

    def _read(self) -> None:
        """Read until the TLS layer has nothing more (pending bytes included), then deliver
        every complete frame."""
        assert self._tls is not None
        while self.state is StreamState.OPEN:
            try:
                data = self._tls.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ssl.SSLError, OSError):
                self.close("connection_error")
                return
            if not data:
                self.close("closed_by_peer")
                return
            self._in += data
            if len(self._in) > self._max_frame + _LENGTH.size and not self._frames():
                return
        self._frames()

    def _frames(self) -> bool:
        while self.state is StreamState.OPEN and len(self._in) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._in)
            if length > self._max_frame:
                self.close("oversized")
                return False
            if len(self._in) < _LENGTH.size + length:
                break
            frame = bytes(self._in[_LENGTH.size : _LENGTH.size + length])
            del self._in[: _LENGTH.size + length]
            self._on_frame(self, frame)
        return self.state is StreamState.OPEN
