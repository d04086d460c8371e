"""A federation member that lies, for tests/adversarial/: a real `fpai-node start`, with lies
switched on and off at run time by the file `<home>/lies` (one lie a line, read at each use).

    python -m fpai_node.testing.liar start --home HOME ...   (the arguments of `fpai-node`)

The lies are issue 13's review findings, told the way a careful liar would: it answers probes
(specs/0006 ROUTE-9) honestly, so that it gets routed to, and lies about real requests only.

- `phantom-model`: announces the model `phantom`, which it does not serve;
- `inflate-receipts`: signs receipts claiming 10^12 completion tokens;
- `black-hole`: takes forwarded requests and never answers them.

Nothing here is imported by the node itself: the lies are patched in before the CLI runs.
"""

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from fpai_node import compose
from fpai_node.cli import main as cli_main
from fpai_node.gossip.messages import Capabilities, Model
from fpai_node.router import serve
from fpai_node.router.messages import InferRequest, is_probe
from fpai_node.router.messages import seal_receipt as honest_seal

LIES = frozenset({"phantom-model", "inflate-receipts", "black-hole"})
PHANTOM = "phantom"
INFLATED_TOKENS = 10**12


def lies_file(home: Path) -> Path:
    return home / "lies"


def tell(home: Path, *lies: str) -> None:
    """Switch the liar at `home` to tell exactly these lies from now on."""
    unknown = set(lies) - LIES
    assert not unknown, f"no such lie: {sorted(unknown)}"
    lies_file(home).write_text("".join(f"{lie}\n" for lie in lies))


def _telling(home: Path) -> Callable[[str], bool]:
    def telling(lie: str) -> bool:
        try:
            return lie in lies_file(home).read_text().split()
        except FileNotFoundError:
            return False

    return telling


def _patch(telling: Callable[[str], bool]) -> None:
    announce = compose.capabilities

    def capabilities(*args: Any) -> Capabilities:
        honest = announce(*args)
        if not telling("phantom-model"):
            return honest
        return Capabilities(
            peer_address=honest.peer_address,
            api_address=honest.api_address,
            models=(*honest.models, Model(PHANTOM, 4096, "llamacpp")),
            hardware=honest.hardware,
            load_permille=honest.load_permille,
            queue_depth=honest.queue_depth,
        )

    compose.capabilities = capabilities  # type: ignore[assignment]

    def seal_receipt(key: Any, forwarded: InferRequest, **claims: Any) -> bytes:
        if telling("inflate-receipts") and not is_probe(forwarded.request_id):
            claims["completion_tokens"] = INFLATED_TOKENS
        return honest_seal(key, forwarded, **claims)

    serve.seal_receipt = seal_receipt  # type: ignore[attr-defined,assignment]

    handle = serve.PeerInference.handle

    async def black_hole(
        self: serve.PeerInference, peer: str, body: bytes, request: web.Request
    ) -> web.StreamResponse:
        if telling("black-hole") and not is_probe(InferRequest.decode(body).request_id):
            await asyncio.Event().wait()  # until the requester gives up and hangs up
        return await handle(self, peer, body, request)

    serve.PeerInference.handle = black_hole  # type: ignore[method-assign]


def liar_command() -> list[str]:
    """What NodeProcess runs instead of `fpai-node`, for a liar."""
    return [sys.executable, "-m", "fpai_node.testing.liar"]


def main(argv: list[str]) -> None:
    home = Path(argv[argv.index("--home") + 1])
    _patch(_telling(home))
    sys.argv = ["fpai-node", *argv]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
