"""A node whose start fails half way stops what it started and says why (in process, with its
real sockets and services; the failure is injected into the registry's start)."""

from pathlib import Path

import pytest

from fpai_node.config import load_settings
from fpai_node.errors import FpaiError
from fpai_node.home import Home
from fpai_node.hostport import HostPort
from fpai_node.node import Node
from fpai_node.registry.service import RegistryService

pytestmark = pytest.mark.timeout(30)


async def test_a_failed_start_raises_its_own_error_and_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding: the listeners were closed before the services stopped, so the peer
    channel's stop failed on a closed socket and that error hid the one that stopped the
    start."""
    home = Home(tmp_path / "home")
    key = home.init("local")
    settings = load_settings(
        home.root,
        cli={
            "api": HostPort("127.0.0.1", 0),
            "peer": HostPort("127.0.0.1", 0),
            "no_model": True,
        },
        environ={},
    )

    async def broken(self: RegistryService) -> None:
        raise FpaiError("the registry could not start (injected)")

    monkeypatch.setattr(RegistryService, "start", broken)
    node = Node(settings, key)
    with pytest.raises(FpaiError, match=r"\(injected\)"):
        await node.start()
    assert node.services == []
    assert home.read_api_url() is None
