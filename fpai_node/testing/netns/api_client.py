"""The campaign's HTTP client: one fresh connection per request, no proxy, and an outcome that
says whether the request left this machine, which decides how the history may use it."""

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["ok", "failed", "indeterminate"]
CONNECT_TIMEOUT_S = 2.0  # on the bridge a connect takes a millisecond; longer means cut or paused


@dataclass(frozen=True)
class Answer:
    """ok: a 2xx. failed: an error status, or no connection (nothing was sent).
    indeterminate: sent, then a timeout or a broken connection: the outcome is unknown."""

    outcome: Outcome
    status: int | None
    body: Any
    sent: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def error_code(self) -> str:
        """The OpenAI-style `error.code` of a failed answer, else ''."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code", ""))
        return ""


def request(
    address: str,
    method: str,
    path: str,
    body: Any = None,
    api_key: str | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    """`method path` on `address` (HOST:PORT) with a JSON body, bounded by `timeout_s`."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=CONNECT_TIMEOUT_S)
    try:
        try:
            connection.connect()
        except OSError as exc:
            return Answer("failed", None, None, sent=False, detail=f"connect: {exc!r}")
        assert connection.sock is not None
        connection.sock.settimeout(timeout_s)
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        data = None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            kind = "timeout" if isinstance(exc, socket.timeout | TimeoutError) else repr(exc)
            return Answer("indeterminate", None, None, sent=True, detail=kind)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")  # /metrics is text
        outcome: Outcome = "ok" if 200 <= response.status < 300 else "failed"
        return Answer(outcome, response.status, parsed, sent=True)
    finally:
        connection.close()
