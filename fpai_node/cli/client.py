"""A small synchronous client for a running node's API, for the CLI (stdlib only)."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fpai_node.errors import ConfigError, FpaiError, NodeNotRunningError


@dataclass(frozen=True, slots=True)
class NodeClient:
    url: str
    api_key: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"--api: expected an http:// or https:// URL, got {self.url!r}")

    def get(self, path: str) -> dict[str, Any]:
        with self._open(path, None) as response:
            return _json_object(response.read(), self.url + path)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._open(path, body, method="PUT") as response:
            return _json_object(response.read(), self.url + path)

    def delete(self, path: str) -> dict[str, Any]:
        with self._open(path, None, method="DELETE") as response:
            return _json_object(response.read(), self.url + path)

    def get_list(self, path: str) -> list[Any]:
        """A GET whose answer is a JSON array (a memory's history)."""
        with self._open(path, None) as response:
            value = json.loads(response.read())
        if not isinstance(value, list):
            raise FpaiError(f"{self.url + path}: expected a JSON array")
        return value

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._open(path, body, timeout_s=600.0) as response:
            return _json_object(response.read(), self.url + path)

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Server-sent events, one `data:` payload at a time, as soon as each line arrives."""
        with self._open(path, body, timeout_s=600.0) as response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise FpaiError(f"the node stopped the answer: {event['error'].get('message')}")
                yield event

    def _open(
        self,
        path: str,
        body: dict[str, Any] | None,
        timeout_s: float | None = None,
        method: str | None = None,
    ) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        # The scheme is checked in __post_init__: only http(s) reaches urlopen.
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, headers=headers, method=method
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s)  # noqa: S310
        except urllib.error.HTTPError as exc:
            raise FpaiError(f"{self.url + path}: HTTP {exc.code}: {_error_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeNotRunningError(f"no node answers at {self.url} ({reason})") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The message of an OpenAI-shaped error, or of a Mem0-shaped one (`detail`)."""
    try:
        body = json.loads(exc.read())
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return exc.reason or "error"


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise NodeNotRunningError(f"{where} did not answer with JSON") from None
    if not isinstance(value, dict):
        raise NodeNotRunningError(f"{where} did not answer with a JSON object")
    return value
