"""A federation member that lies, for tests/adversarial/: a real `fpai-node start`, with lies
switched on and off at run time by the file `<home>/lies` (one lie a line, read at each use).

    python -m fpai_node.testing.liar start --home HOME ...   (the arguments of `fpai-node`)

The lies are issue 13's review findings, told the way a careful liar would: it answers probes
(specs/0006 ROUTE-9) honestly, so that it gets routed to, and lies about real requests only.

- `phantom-model`: announces the model `phantom`, which it does not serve;
- `inflate-receipts`: signs receipts claiming 10^12 completion tokens;
- `black-hole`: takes forwarded requests and never answers them.

And issue 18's, against rewards (specs/0010-rewards.md):
- `inflate-prompt`: claims the most prompt tokens RECEIPT-2 lets a requester accept;
- `wrong-text`: answers with filler instead of the model's text, with honest counts;
- `drop-answers`: runs the model and signs the receipt, then hangs up before sending anything;
- `inflate-digest`: commits epoch digests claiming a thousand times the work it served.

And issue 19's, against the dashboard:
- `script-model`: announces a model whose id is HTML with script in it.

Nothing here is imported by the node itself: the lies are patched in before the CLI runs.
"""

import asyncio
import sys
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aiohttp import web

from fpai_node import compose
from fpai_node.cli import main as cli_main
from fpai_node.gossip.messages import Capabilities, Model
from fpai_node.inference.base import Finish, TextChunk, Usage
from fpai_node.rewards.digests import Digest
from fpai_node.rewards.params import RewardParams
from fpai_node.rewards.service import RewardsService
from fpai_node.router import jobs, serve
from fpai_node.router.jobs import Job, LocalEvent
from fpai_node.router.messages import InferRequest, is_probe, prompt_limit
from fpai_node.router.messages import seal_receipt as honest_seal

LIES = frozenset(
    {
        "phantom-model",
        "script-model",
        "inflate-receipts",
        "black-hole",
        "inflate-prompt",
        "wrong-text",
        "drop-answers",
        "inflate-digest",
    }
)
PHANTOM = "phantom"
# A model id written to run in a page that shows it as HTML (the dashboard must not), and to
# send whatever it can to an address the page never asks
SCRIPT = '<img src="/x.png" onerror="document.title=\'pwned\'"><script>alert(1)</script>'
INFLATED_TOKENS = 10**12
DIGEST_FACTOR = 1000
FILLER = " violet anchor pepper quantum lantern mosaic harbor cobalt tundra whisper"  # unrelated
_serving: ContextVar[str] = ContextVar("serving", default="")  # the request id being served


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
        extra = [
            Model(model_id, 4096, "llamacpp")
            for lie, model_id in (("phantom-model", PHANTOM), ("script-model", SCRIPT))
            if telling(lie)
        ]
        if not extra:
            return honest
        return Capabilities(
            peer_address=honest.peer_address,
            api_address=honest.api_address,
            models=(*honest.models, *extra),
            hardware=honest.hardware,
            load_permille=honest.load_permille,
            queue_depth=honest.queue_depth,
        )

    compose.capabilities = capabilities  # type: ignore[assignment]

    def seal_receipt(key: Any, forwarded: InferRequest, **claims: Any) -> bytes:
        if telling("inflate-receipts") and not is_probe(forwarded.request_id):
            claims["completion_tokens"] = INFLATED_TOKENS
        if telling("inflate-prompt") and not is_probe(forwarded.request_id):
            claims["prompt_tokens"] = prompt_limit(forwarded)
        return honest_seal(key, forwarded, **claims)

    serve.seal_receipt = seal_receipt  # type: ignore[attr-defined,assignment]
    _patch_answers(telling)
    _patch_digests(telling)

    handle = serve.PeerInference.handle

    async def black_hole(
        self: serve.PeerInference, peer: str, body: bytes, request: web.Request
    ) -> web.StreamResponse:
        if telling("black-hole") and not is_probe(InferRequest.decode(body).request_id):
            await asyncio.Event().wait()  # until the requester gives up and hangs up
        return await handle(self, peer, body, request)

    serve.PeerInference.handle = black_hole  # type: ignore[method-assign]


def _patch_answers(telling: Callable[[str], bool]) -> None:
    honest_serve = serve.PeerInference._serve
    honest_run = jobs.run_locally
    honest_stream = serve.PeerInference._stream

    async def serving(
        self: serve.PeerInference, forwarded: InferRequest, request: web.Request, arrived: float
    ) -> web.StreamResponse:
        token = _serving.set(forwarded.request_id)
        try:
            return await honest_serve(self, forwarded, request, arrived)
        finally:
            _serving.reset(token)

    def lying() -> bool:
        return bool(_serving.get()) and not is_probe(_serving.get())

    async def run_locally(served: Any, job: Job) -> AsyncGenerator[LocalEvent, None]:
        if not (telling("wrong-text") and lying() and job.api != "embeddings"):
            async for event in honest_run(served, job):
                yield event
            return
        prompt_tokens = 0
        async for event in honest_run(served, job):  # only for an honest prompt count
            if isinstance(event, Finish):
                prompt_tokens = event.usage.prompt_tokens
        words = job.max_tokens or 16
        for i in range(words):
            yield TextChunk(FILLER.split(" ")[1 + i % 10] + " ")
        yield Finish("length", Usage(prompt_tokens, words))  # counts a check cannot fault

    async def stream(
        self: serve.PeerInference,
        response: web.StreamResponse,
        forwarded: InferRequest,
        job: Job,
        first: LocalEvent,
        events: AsyncGenerator[LocalEvent, None],
    ) -> None:
        if not (telling("drop-answers") and lying()):
            await honest_stream(self, response, forwarded, job, first, events)
            return
        event, sent = first, 0
        while isinstance(event, TextChunk):  # the work is done...
            sent += len(event.text.encode("utf-8"))
            event = await anext(events)
        assert isinstance(event, Finish)
        usage = event.usage
        self._receipt(forwarded, job, usage.prompt_tokens, usage.completion_tokens, sent)
        raise ConnectionResetError("dropped after signing")  # ...and nothing is delivered

    serve.PeerInference._serve = serving  # type: ignore[method-assign]
    setattr(serve, "run_locally", run_locally)  # the name serve.py calls  # noqa: B010
    serve.PeerInference._stream = stream  # type: ignore[method-assign]


def _patch_digests(telling: Callable[[str], bool]) -> None:
    honest_digest = RewardsService.digest

    def digest(self: RewardsService, params: RewardParams, epoch: int) -> Digest:
        digest = honest_digest(self, params, epoch)
        if telling("inflate-digest"):
            for row in digest.served.values():
                row.requests *= DIGEST_FACTOR
                row.prompt_tokens *= DIGEST_FACTOR
                row.completion_tokens *= DIGEST_FACTOR
        return digest

    RewardsService.digest = digest  # type: ignore[method-assign]


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
