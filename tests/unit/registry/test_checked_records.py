"""Records every reader checks (fpai_node/registry/checked.py): once per key and content, a
refusal counted once by kind and reason, the checks of deleted records forgotten."""

from collections import Counter

from fpai_node.registry.checked import CheckedRecords


class Refused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def test_a_record_is_checked_once_per_content_and_refusals_are_counted_once() -> None:
    refused: Counter[str] = Counter()
    records = CheckedRecords((Refused,), refused)
    calls: list[object] = []

    def good(value: object) -> object:
        calls.append(value)
        return ("checked", value)

    def bad() -> object:
        calls.append("bad")
        raise Refused("bad_signature")

    for _ in range(3):
        assert records.check("member.a.x", b"v1", "digest", lambda: good(b"v1")) == (
            "checked",
            b"v1",
        )
    assert records.check("member.a.x", b"v2", "digest", lambda: good(b"v2")) == ("checked", b"v2")
    for _ in range(3):
        assert records.check("member.b.x", [b"v", 7], "report", bad) is None
    assert calls == [b"v1", b"v2", "bad"]
    assert refused == {"report_bad_signature": 1}
    assert len(records) == 2
    records.forget_absent({"member.a.x"})
    assert len(records) == 1
    assert records.check("member.b.x", [b"v", 7], "report", bad) is None
    assert calls[-1] == "bad" and refused == {"report_bad_signature": 2}  # checked again
