"""A one-shot POST to a node's peer channel from a test, as any key holder could send it."""

import datetime as dt
import http.client

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context


def peer_post(
    sender: NodeKey | TlsIdentity, address: str, path: str, body: bytes
) -> tuple[int, bytes]:
    """POST `body` over mutual TLS as `sender` (a key: with an open certificate for it);
    (status, answer)."""
    host, port = address.rsplit(":", 1)
    context = client_context(tls_identity(sender))
    connection = http.client.HTTPSConnection(
        host.strip("[]"), int(port), context=context, timeout=30
    )
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def tls_identity(sender: NodeKey | TlsIdentity) -> TlsIdentity:
    """`sender` as it presents itself on the peer channel: a bare key, with an open certificate."""
    if isinstance(sender, TlsIdentity):
        return sender
    return TlsIdentity.open(sender, dt.datetime.now(dt.UTC))
