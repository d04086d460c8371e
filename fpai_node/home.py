"""The node's home directory: its key, config and run-time files (specs/0001-identity.md)."""

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fpai_node.chain import operator_key as operator_keys
from fpai_node.config import Preset, render_node_toml
from fpai_node.errors import FpaiError, IdentityError
from fpai_node.identity import NodeKey


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("FPAI_HOME") or Path.home() / ".fpai").expanduser()


@dataclass(frozen=True, slots=True)
class Home:
    root: Path

    @property
    def key_file(self) -> Path:
        return self.root / "keys" / "node.key"

    @property
    def operator_key_file(self) -> Path:
        """The operator's Ethereum key (specs/0009-treasury.md, TREASURY-1)."""
        return self.root / "keys" / "operator.key"

    @property
    def config_file(self) -> Path:
        return self.root / "node.toml"

    @property
    def registry_dir(self) -> Path:
        """The node's Raft log, snapshot and hint (docs/registry.md "On disk")."""
        return self.root / "raft"

    @property
    def api_file(self) -> Path:
        """Written by a running node so that other commands can find its API."""
        return self.root / "api.json"

    def is_initialised(self) -> bool:
        return self.key_file.exists()

    def init(self, preset: Preset, operator_key: Path | None = None) -> NodeKey:
        """Create the home, node.toml, a new node key and the operator key (new, or imported
        from `operator_key`); refuse if a node key already exists."""
        if self.key_file.exists():
            existing = NodeKey.load(self.key_file)
            raise IdentityError(
                f"{self.root} is already initialised (node {existing.node_id}); "
                "refusing to overwrite its key"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.root.chmod(0o700)  # an existing directory too: it will hold the node's keys
            for sub in ("keys", "logs"):
                (self.root / sub).mkdir(exist_ok=True, mode=0o700)
            if not self.config_file.exists():
                # 0600: node.toml may hold API keys.
                fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(render_node_toml(preset))
        except OSError as exc:
            raise FpaiError(f"cannot create home {self.root}: {exc.strerror}") from None
        if not self.operator_key_file.exists():  # an operator key is never replaced
            operator_keys.create(self.operator_key_file, imported_from=operator_key)
        elif operator_key is not None:
            raise FpaiError(
                f"{self.operator_key_file} already holds an operator key; refusing to replace it"
            )
        key = NodeKey.generate()
        key.save(self.key_file)
        return key

    def ensure_operator_key(self) -> str | None:
        """Create the operator key of a home made before operator keys existed; returns its
        address when it had to be made."""
        if self.operator_key_file.exists():
            return None
        return operator_keys.create(self.operator_key_file)

    def lock(self) -> "HomeLock":
        """Hold the home for one running node: two nodes on one home would share one identity."""
        path = self.root / "node.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FpaiError(
                f"another node (pid {holder}) is already running from home {self.root}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return HomeLock(fd)

    def write_api_address(self, url: str, node_id: str, peer: str = "") -> None:
        tmp = self.api_file.with_suffix(".tmp")
        record = {"url": url, "node_id": node_id, "pid": os.getpid(), "peer": peer}
        tmp.write_text(json.dumps(record))
        tmp.replace(self.api_file)

    def read_peer_address(self) -> str | None:
        return self._api_record_field("peer")

    def read_api_url(self) -> str | None:
        return self._api_record_field("url")

    def clear_api_address(self) -> None:
        """Remove the address file if it is still ours (a second node may have replaced it)."""
        if self._api_record().get("pid") == os.getpid():
            self.api_file.unlink(missing_ok=True)

    def _api_record(self) -> dict[str, object]:
        try:
            data = json.loads(self.api_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _api_record_field(self, name: str) -> str | None:
        value = self._api_record().get(name)
        return value if isinstance(value, str) and value else None


class HomeLock:
    """An exclusive flock on the home, released on close or when the process dies."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
