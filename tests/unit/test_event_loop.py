"""The loop a node runs on is uvloop's (fpai_node/event_loop.py)."""

import asyncio

import uvloop

from fpai_node import event_loop


def test_run_returns_the_value_of_a_coroutine_run_on_uvloop() -> None:
    async def which() -> tuple[type[asyncio.AbstractEventLoop], int]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), 42

    loop_type, value = event_loop.run(which())
    assert issubclass(loop_type, uvloop.Loop)
    assert value == 42
