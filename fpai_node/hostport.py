"""HOST:PORT addresses, as flags, config, announcements and the registry write them.

At the bottom of the layers: the pure registry state and the transport parse addresses, and
neither may import the node's configuration to do it.
"""

import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol


class Bound(Protocol):
    """A bound socket (socket.socket), named here without importing socket into pure code."""

    def getsockname(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def bound_to(cls, sock: Bound) -> "HostPort":
        """The address a listening socket is bound to (its real port, when bound to port 0)."""
        host, port = sock.getsockname()[:2]
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name may resolve anywhere: treat it as public


def parse_host_port(text: str) -> HostPort:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, e.g. [::1]:8100, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is above 65535")
    return HostPort(host, port)
