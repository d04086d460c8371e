"""Certificate renewal as a supervisor action (fpai_node/supervisor/certificate_policy.py), with
real certificates and contexts and the real action record."""

import datetime as dt
from pathlib import Path

from fpai_node.identity import NodeKey
from fpai_node.identity.certs import create_ca, issue_node_certificate, save_certificate
from fpai_node.identity.tls import TlsIdentity, server_context
from fpai_node.supervisor.actions import ActionBook
from fpai_node.supervisor.certificate_policy import RENEW_BEFORE, CertificatePolicy

NOW = dt.datetime.now(dt.UTC)


class Gate:
    def __init__(self, mode: str) -> None:
        self.book = ActionBook(mode)

    def allow(self, key: str, kind: str, subject: str, summary: str, reports: bool = False) -> bool:
        return self.book.ask(key, kind, subject, summary, 0.0, reports)

    def failed(self, key: str, reason: str) -> None:
        self.book.failed(key, reason, 0.0)

    def succeeded(self, key: str, outcome: str) -> None:
        self.book.succeeded(key, outcome, 0.0)


def test_an_open_certificate_is_re_issued_only_when_due() -> None:
    key = NodeKey.generate()
    fresh = TlsIdentity.open(key, NOW)
    gate = Gate("autonomous")
    CertificatePolicy(fresh, gate, None).step(NOW)
    assert gate.book.actions() == []  # 365 days left: nothing to do
    ageing = TlsIdentity.open(key, NOW - dt.timedelta(days=340))
    server_context(ageing)  # a live context, which the renewal reloads
    old = ageing.certificate
    CertificatePolicy(ageing, gate, None).step(NOW)
    [action] = gate.book.actions()
    assert (action.kind, action.state) == ("renew_certificate", "done")
    assert ageing.certificate is not old
    assert ageing.certificate.not_valid_after_utc - NOW > RENEW_BEFORE
    assert (action.outcome or "").startswith("renewed: valid until ")


def test_a_federation_certificate_waits_for_a_newer_file_and_for_approval(tmp_path: Path) -> None:
    key = NodeKey.generate()
    ca = create_ca("federation", NOW)
    short = issue_node_certificate(ca, key.public_key, NOW, dt.timedelta(days=10))
    identity = TlsIdentity.federation(key, short, ca.certificate, NOW)
    installed = tmp_path / "node.crt"
    save_certificate(installed, short)
    gate = Gate("supervised")
    policy = CertificatePolicy(identity, gate, installed)
    policy.step(NOW)
    assert gate.book.actions() == []  # due, but the node cannot renew it: only the CA can
    longer = issue_node_certificate(ca, key.public_key, NOW)
    save_certificate(installed, longer, overwrite=True)
    policy.step(NOW)
    [pending] = gate.book.actions()
    assert pending.state == "pending" and str(installed) in pending.summary
    assert identity.certificate is short
    gate.book.approve(pending.id, 0.0)
    policy.step(NOW)
    assert gate.book.actions()[0].state == "done"
    assert identity.certificate.serial_number == longer.serial_number


def test_a_file_for_another_key_fails_the_action_and_is_never_presented(tmp_path: Path) -> None:
    key = NodeKey.generate()
    ca = create_ca("federation", NOW)
    short = issue_node_certificate(ca, key.public_key, NOW, dt.timedelta(days=10))
    identity = TlsIdentity.federation(key, short, ca.certificate, NOW)
    installed = tmp_path / "node.crt"
    save_certificate(installed, issue_node_certificate(ca, NodeKey.generate().public_key, NOW))
    gate = Gate("autonomous")
    CertificatePolicy(identity, gate, installed).step(NOW)
    [action] = gate.book.actions()
    assert action.state == "running" and action.retry_at is not None
    assert "certificate is for node" in (action.outcome or "")
    assert identity.certificate is short
