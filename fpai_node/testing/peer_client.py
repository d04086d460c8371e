"""A one-shot POST to a node's peer channel from a test, as any key holder could send it."""

import datetime as dt
import http.client

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context


def peer_post(key: NodeKey, address: str, path: str, body: bytes) -> tuple[int, bytes]:
    """POST `body` over mutual TLS with an open certificate for `key`; (status, answer)."""
    host, port = address.rsplit(":", 1)
    context = client_context(TlsIdentity.open(key, dt.datetime.now(dt.UTC)))
    connection = http.client.HTTPSConnection(
        host.strip("[]"), int(port), context=context, timeout=30
    )
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
