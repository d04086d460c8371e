"""The event loop a node runs on: uvloop (libuv's, written in Cython) instead of asyncio's own.

Measured with `benchmarks/registry_trees.py` (two clusters side by side, three runs, December
2026): the registry commits 6 to 12% more writes a second at 16 clients, -1 to 9% at 64; with
one client, whose time is in the Raft round, it changes nothing (docs/registry.md).

Tests run in process stay on asyncio's loop: on uvloop, pytest-timeout's SIGALRM handler raises
into uvloop's exception handler, which logs it, and a hung test then hangs CI instead of failing
at its timeout. The node processes that the integration tests start run on uvloop.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a new loop of ours."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
