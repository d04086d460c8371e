"""A node's certificate renewed while it runs (TlsIdentity.renew): contexts already made
present the new certificate from their next handshake; a certificate for another key or from
another CA is refused and changes nothing."""

import datetime as dt
import socket
import ssl
import threading

import pytest
from cryptography import x509

from fpai_node.identity import NodeKey
from fpai_node.identity.certs import CertificateError, create_ca, issue_node_certificate, open_ca
from fpai_node.identity.tls import TlsIdentity, client_context, server_context

NOW = dt.datetime.now(dt.UTC)


def presented(server: ssl.SSLContext, client: ssl.SSLContext) -> x509.Certificate:
    """The certificate the server side shows in one TLS 1.3 handshake over a socket pair."""
    left, right = socket.socketpair()
    accepted: list[ssl.SSLSocket] = []

    def serve() -> None:
        accepted.append(server.wrap_socket(left, server_side=True))

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(right) as tls:
        der = tls.getpeercert(binary_form=True)
    thread.join()
    accepted[0].close()
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_contexts_present_the_renewed_certificate_from_the_next_handshake() -> None:
    key, peer = NodeKey.generate(), NodeKey.generate()
    identity = TlsIdentity.open(key, NOW - dt.timedelta(days=300))  # 65 days left
    server, client = server_context(identity), client_context(TlsIdentity.open(peer, NOW))
    before = presented(server, client)
    assert before.serial_number == identity.certificate.serial_number
    renewed = issue_node_certificate(open_ca(), key.public_key, NOW)
    identity.renew(renewed, NOW)
    after = presented(server, client)
    assert after.serial_number == renewed.serial_number != before.serial_number
    assert after.not_valid_after_utc > before.not_valid_after_utc
    assert identity.certificate is renewed


def test_a_certificate_for_another_key_or_ca_is_refused_and_nothing_changes() -> None:
    key = NodeKey.generate()
    identity = TlsIdentity.open(key, NOW)
    server = server_context(identity)
    client = client_context(TlsIdentity.open(NodeKey.generate(), NOW))
    kept = identity.certificate
    stranger = issue_node_certificate(open_ca(), NodeKey.generate().public_key, NOW)
    with pytest.raises(CertificateError, match="certificate is for node"):
        identity.renew(stranger, NOW)
    other_ca = issue_node_certificate(create_ca("elsewhere", NOW), key.public_key, NOW)
    with pytest.raises(CertificateError):
        identity.renew(other_ca, NOW)
    assert identity.certificate is kept
    assert presented(server, client).serial_number == kept.serial_number
