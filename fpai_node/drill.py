"""`fpai-node sovereignty --drill`: a live check that a testnet survives the loss of the node
that serves most (docs/operator-guide.md, "Sovereignty").

The drill writes a memory through that node, stops it (a pause: it keeps its registry
membership), then asks the others: chat with every model the federation served, the memory
written through the stopped node, a new memory, and the treasury's status. Then it brings the
node back and waits until the federation is whole again. A check that fails names what broke.
"""

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from fpai_node.api.openai.routes import SERVED_BY_HEADER
from fpai_node.errors import FpaiError
from fpai_node.supervisor.checks import Check
from fpai_node.testnet import Testnet, TestnetNode, observe, stop, up

ANSWER_WITHIN_S = 20.0  # gossip marks a stopped node left at once, a dead one in under 10 s
ALONE_WITHIN_S = 2.0  # a model no other node serves: retrying brings no server, one answer is it
RETRY_EVERY_S = 1.0
CHAT_TIMEOUT_S = 60.0  # a short answer from the bundled model on a busy CPU


@dataclass(frozen=True, slots=True)
class DrillReport:
    stopped: str  # the testnet name of the node stopped
    stopped_id: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def public(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "stopped": self.stopped,
            "stopped_id": self.stopped_id,
            "checks": [c.public() for c in self.checks],
        }


def run_drill(testnet: Testnet, on_step: Callable[[str], None]) -> DrillReport:
    views = observe(testnet)
    down = [v.node.name for v in views if not v.healthy]
    if down:
        raise FpaiError(f"the testnet is not whole ({', '.join(down)} not answering): run up")
    models = sorted({m for v in views for m in v.models} | _announced(views[0].status))
    busiest = max(views, key=lambda v: (len(v.models), -views.index(v)))
    target, others = busiest.node, [v.node for v in views if v is not busiest]
    served_elsewhere = {m for v in views if v is not busiest for m in v.models}
    served_elsewhere |= _announced(views[0].status, excluding=busiest.node_id)
    user = f"drill-{secrets.token_hex(4)}"
    written = _post(target, "/v3/memories/add/", _memory(user, "written before the drill"))
    memory_id = str(written["results"][0]["id"])
    on_step(f"stopping {target.name} ({busiest.node_id}), which serves {len(busiest.models)}")
    stop([target])
    testnet.save()
    checks: list[Check] = []
    try:
        survivor = others[0]
        for model in models:
            alone = model not in served_elsewhere
            aside = " (no other node serves it)" if alone else ""
            on_step(f"chat with {model} through {survivor.name}{aside}")
            chat = partial(_chat, survivor, model)
            within_s = ALONE_WITHIN_S if alone else ANSWER_WITHIN_S
            checks.append(_retrying(f"chat {model}", chat, within_s))
        on_step("memory through the others")
        checks.append(_retrying("memory read", partial(_read_memory, survivor, memory_id)))
        checks.append(_retrying("memory write", partial(_write_memory, others[-1], user)))
        on_step("treasury status")
        checks.append(_retrying("treasury", partial(_treasury, survivor)))
    finally:
        on_step(f"bringing {target.name} back")
        up(testnet, lambda progress: None)
    return DrillReport(target.name, busiest.node_id, tuple(checks))


def _announced(status: dict[str, Any] | None, excluding: str = "") -> set[str]:
    """The models live peers (but `excluding`) announce, as the first node sees them."""
    peers = [p for p in (status or {}).get("peers", []) if p.get("node_id") != excluding]
    return {str(m["id"]) for p in peers if p.get("state") == "alive" for m in p.get("models", [])}


def _retrying(name: str, check: Callable[[], str], within_s: float = ANSWER_WITHIN_S) -> Check:
    """A check passes once within `within_s`; else it fails with its last error."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return Check(name, True, check())
        except (FpaiError, OSError, ValueError, KeyError) as exc:
            if time.monotonic() >= deadline:
                return Check(name, False, str(exc))
        time.sleep(RETRY_EVERY_S)


def _chat(node: TestnetNode, model: str) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0,
    }
    answer, headers = _request(node, "/v1/chat/completions", body, CHAT_TIMEOUT_S)
    text = answer["choices"][0]["message"]["content"]
    return f"answered by {headers.get(SERVED_BY_HEADER, 'the federation')}: {text!r}"


def _memory(user: str, text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "user_id": user, "infer": False}


def _read_memory(node: TestnetNode, memory_id: str) -> str:
    record = _get(node, f"/v1/memories/{memory_id}/")
    return f"the memory written through the stopped node reads back: {record['memory']!r}"


def _write_memory(node: TestnetNode, user: str) -> str:
    answer = _post(node, "/v3/memories/add/", _memory(user, "written during the drill"))
    return f"a new memory is stored ({answer['results'][0]['event']})"


def _treasury(node: TestnetNode) -> str:
    try:
        status = _get(node, "/fpai/v1/treasury")
    except FpaiError as exc:
        if "no chain configured" in str(exc):
            return "no chain configured: nothing to check"
        raise
    return f"treasury answers: block {status['block']}, {len(status['proposals'])} proposals"


def _get(node: TestnetNode, path: str) -> dict[str, Any]:
    return _call(node, path, None, 10.0)


def _post(
    node: TestnetNode, path: str, body: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    return _call(node, path, body, timeout_s)


def _call(
    node: TestnetNode, path: str, body: dict[str, Any] | None, timeout_s: float
) -> dict[str, Any]:
    return _request(node, path, body, timeout_s)[0]


def _request(
    node: TestnetNode, path: str, body: dict[str, Any] | None, timeout_s: float
) -> tuple[dict[str, Any], Mapping[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the testnet's own loopback API)
        node.api_url + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            value = json.loads(response.read())
            headers = dict(response.headers)
    except urllib.error.HTTPError as exc:
        raise FpaiError(f"{node.name} {path}: HTTP {exc.code}: {_message(exc)}") from None
    if not isinstance(value, dict):
        raise FpaiError(f"{node.name} {path}: expected a JSON object")
    return value, headers


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return exc.reason
