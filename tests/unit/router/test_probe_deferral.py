"""ROUTE-9: which refusals defer a probe (no evidence against the claim) and which fail it."""

from fpai_node.inference.base import Overloaded
from fpai_node.router.forward import NotMemberYet, PeerRefused, PeerUnavailable
from fpai_node.router.messages import Failed
from fpai_node.router.proofs import DEFER_MIN_S
from fpai_node.router.service import probe_deferral


def test_busy_and_no_member_yet_defer_and_anything_else_fails() -> None:
    assert probe_deferral(Overloaded("node n: full", 7)) == ("busy", 7.0)
    refused = NotMemberYet("node n refused (not_a_member): this node serves federation members")
    assert probe_deferral(refused) == ("not_a_member", DEFER_MIN_S)
    assert probe_deferral(PeerUnavailable("node n is unreachable")) is None
    assert probe_deferral(PeerUnavailable("node n lied", "broke_protocol")) is None
    assert probe_deferral(PeerRefused(400, Failed("bad_probe", "no"))) is None
