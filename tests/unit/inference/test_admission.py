"""Admission on a real event loop: capacity, a bounded FIFO queue, and honest refusals."""

import asyncio
from collections.abc import Callable

import pytest

from fpai_node.inference.admission import Admission
from fpai_node.inference.base import Overloaded

TIMEOUT_S = 5.0


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until `condition` holds; a wait that never ends fails the test."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT_S)


class Request:
    """One generation: records when it is admitted and holds its slot until released."""

    def __init__(self, admission: Admission, name: str, order: list[str]) -> None:
        self.name = name
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._admission = admission
        self._order = order
        self.task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        async with self._admission.slot():
            self._order.append(self.name)
            self.entered.set()
            await self.release.wait()

    async def admitted(self) -> None:
        await asyncio.wait_for(self.entered.wait(), TIMEOUT_S)

    async def finish(self) -> None:
        self.release.set()
        await asyncio.wait_for(self.task, TIMEOUT_S)


async def queued(admission: Admission, name: str, order: list[str], waiting: int) -> Request:
    """A request that is known to be in the queue (the queue has reached `waiting`)."""
    request = Request(admission, name, order)
    await until(lambda: admission.waiting == waiting)
    assert not request.entered.is_set()
    return request


async def test_fifo_with_capacity_one_and_two_waiting() -> None:
    admission = Admission("m", capacity=1, max_waiting=2)
    order: list[str] = []
    assert (admission.running, admission.waiting) == (0, 0)

    a = Request(admission, "a", order)
    await a.admitted()
    assert (admission.running, admission.waiting) == (1, 0)

    b = await queued(admission, "b", order, waiting=1)
    assert (admission.running, admission.waiting) == (1, 1)
    c = await queued(admission, "c", order, waiting=2)
    assert (admission.running, admission.waiting) == (1, 2)

    # The fourth concurrent request is refused at once, with an honest Retry-After.
    with pytest.raises(Overloaded) as refused:
        async with admission.slot():
            raise AssertionError("admitted past a full queue")
    assert refused.value.retry_after_s >= 1
    assert refused.value.retry_after_s == admission.retry_after_s()
    assert (refused.value.status, refused.value.code) == (429, "overloaded")
    assert "m" in str(refused.value)
    assert (admission.running, admission.waiting) == (1, 2)

    await a.finish()
    await b.admitted()
    assert order == ["a", "b"]
    assert not c.entered.is_set()
    assert (admission.running, admission.waiting) == (1, 1)

    await b.finish()
    await c.admitted()
    assert order == ["a", "b", "c"]
    assert (admission.running, admission.waiting) == (1, 0)

    await c.finish()
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_place_freed_in_the_queue_is_offered_again() -> None:
    admission = Admission("m", capacity=1, max_waiting=1)
    order: list[str] = []
    a = Request(admission, "a", order)
    await a.admitted()
    b = await queued(admission, "b", order, waiting=1)
    with pytest.raises(Overloaded):
        async with admission.slot():
            pass

    await a.finish()
    await b.admitted()
    c = await queued(admission, "c", order, waiting=1)
    await b.finish()
    await c.admitted()
    await c.finish()
    assert order == ["a", "b", "c"]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_cancelled_waiter_leaves_the_queue() -> None:
    admission = Admission("m", capacity=1, max_waiting=2)
    order: list[str] = []
    a = Request(admission, "a", order)
    await a.admitted()
    b = await queued(admission, "b", order, waiting=1)
    c = await queued(admission, "c", order, waiting=2)

    b.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(b.task, TIMEOUT_S)
    assert (admission.running, admission.waiting) == (1, 1)

    # The cancelled request's place is free again: a new request queues instead of a 429.
    d = await queued(admission, "d", order, waiting=2)
    assert (admission.running, admission.waiting) == (1, 2)

    await a.finish()
    await c.admitted()
    assert (admission.running, admission.waiting) == (1, 1)
    await c.finish()
    await d.admitted()
    assert (admission.running, admission.waiting) == (1, 0)
    await d.finish()
    assert order == ["a", "c", "d"]
    assert not b.entered.is_set()
    assert (admission.running, admission.waiting) == (0, 0)


async def test_waiter_cancelled_as_its_slot_is_handed_over_passes_it_on() -> None:
    admission = Admission("m", capacity=1, max_waiting=2)
    order: list[str] = []
    async with admission.slot():  # the test itself holds the one slot
        b = await queued(admission, "b", order, waiting=1)
        c = await queued(admission, "c", order, waiting=2)
    # Released in this very step: the slot is promised to b, which has not run yet.
    assert not b.entered.is_set()
    b.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(b.task, TIMEOUT_S)

    await c.admitted()
    assert order == ["c"]
    assert (admission.running, admission.waiting) == (1, 0)
    await c.finish()
    assert (admission.running, admission.waiting) == (0, 0)


async def test_cancelled_running_request_frees_its_slot() -> None:
    admission = Admission("m", capacity=1, max_waiting=1)
    order: list[str] = []
    a = Request(admission, "a", order)
    await a.admitted()
    b = await queued(admission, "b", order, waiting=1)

    a.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(a.task, TIMEOUT_S)
    await b.admitted()
    assert (admission.running, admission.waiting) == (1, 0)
    await b.finish()
    assert (admission.running, admission.waiting) == (0, 0)


async def test_error_inside_the_slot_frees_it() -> None:
    admission = Admission("m", capacity=1, max_waiting=0)
    with pytest.raises(RuntimeError, match="boom"):
        async with admission.slot():
            assert admission.running == 1
            raise RuntimeError("boom")
    assert (admission.running, admission.waiting) == (0, 0)
    async with admission.slot():
        assert admission.running == 1


async def test_retry_after_grows_with_the_queue() -> None:
    admission = Admission("m", capacity=1, max_waiting=3)
    order: list[str] = []
    a = Request(admission, "a", order)
    await a.admitted()
    seen = [admission.retry_after_s()]
    waiters = []
    for n in range(1, 4):
        waiters.append(await queued(admission, f"w{n}", order, waiting=n))
        seen.append(admission.retry_after_s())
    assert all(s >= 1 for s in seen)
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)  # strictly growing
    # Before any generation is measured, a slot is assumed to be held 5 s.
    assert seen == [5, 10, 15, 20]

    with pytest.raises(Overloaded) as refused:
        async with admission.slot():
            pass
    assert refused.value.retry_after_s == 20

    await a.finish()
    for w in waiters:
        await w.admitted()
        await w.finish()
    assert order == ["a", "w1", "w2", "w3"]


async def test_retry_after_shrinks_with_capacity() -> None:
    assert Admission("m", capacity=1, max_waiting=0).retry_after_s() == 5
    assert Admission("m", capacity=2, max_waiting=0).retry_after_s() == 3
    assert Admission("m", capacity=10, max_waiting=0).retry_after_s() == 1


async def test_retry_after_follows_measured_generations() -> None:
    admission = Admission("m", capacity=1, max_waiting=0)
    for _ in range(30):  # near-instant generations pull the 5 s guess down towards 0
        async with admission.slot():
            pass
    assert admission.retry_after_s() == 1


async def test_capacity_two_runs_two_at_once() -> None:
    admission = Admission("m", capacity=2, max_waiting=1)
    order: list[str] = []
    a = Request(admission, "a", order)
    b = Request(admission, "b", order)
    await a.admitted()
    await b.admitted()
    assert (admission.running, admission.waiting) == (2, 0)

    c = await queued(admission, "c", order, waiting=1)
    assert (admission.running, admission.waiting) == (2, 1)
    with pytest.raises(Overloaded):
        async with admission.slot():
            pass

    await b.finish()
    await c.admitted()
    assert (admission.running, admission.waiting) == (2, 0)
    assert a.entered.is_set() and not a.task.done()
    await a.finish()
    await c.finish()
    assert sorted(order[:2]) == ["a", "b"] and order[2] == "c"
    assert (admission.running, admission.waiting) == (0, 0)


async def test_no_queue_refuses_the_second_request() -> None:
    admission = Admission("m", capacity=1, max_waiting=0)
    order: list[str] = []
    a = Request(admission, "a", order)
    await a.admitted()
    with pytest.raises(Overloaded) as refused:
        async with admission.slot():
            pass
    assert refused.value.retry_after_s == 5
    assert (admission.running, admission.waiting) == (1, 0)
    await a.finish()
    async with admission.slot():
        assert (admission.running, admission.waiting) == (1, 0)


async def test_queue_bound_holds_while_a_slot_is_handed_over() -> None:
    """A release hands the slot straight to the first waiter: a request arriving in that very
    step sees the queue place b vacated, never a free slot beside a full queue."""
    admission = Admission("m", capacity=1, max_waiting=1)
    order: list[str] = []
    async with admission.slot():  # the test itself holds the one slot
        b = await queued(admission, "b", order, waiting=1)
        late = asyncio.create_task(_enter(admission))  # first runs in the next loop step,
        assert (admission.running, admission.waiting) == (1, 1)
    # ... after this release in the same step: the slot already belongs to b.
    assert (admission.running, admission.waiting) == (1, 0)
    try:
        await until(lambda: b.entered.is_set() and admission.waiting == 1)
        assert (admission.running, admission.waiting) == (1, 1)  # b runs, late waits: no more
        assert not late.done()
        with pytest.raises(Overloaded):  # the one queue place is late's now
            await _enter(admission)
    finally:
        await b.finish()
        await asyncio.wait_for(late, 5)
    assert (admission.running, admission.waiting) == (0, 0)


async def _enter(admission: Admission) -> None:
    async with admission.slot():
        pass


@pytest.mark.parametrize(
    ("capacity", "max_waiting"), [(0, 0), (0, 5), (-1, 0), (1, -1), (2, -5), (-3, -3)]
)
def test_invalid_arguments(capacity: int, max_waiting: int) -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1 and max_waiting >= 0"):
        Admission("m", capacity=capacity, max_waiting=max_waiting)


@pytest.mark.parametrize(("capacity", "max_waiting"), [(1, 0), (1, 100), (64, 0), (3, 2)])
async def test_valid_arguments(capacity: int, max_waiting: int) -> None:
    """The limits are the ones given: `capacity` run at once, `max_waiting` more wait, the
    next is refused; the waiters then run in turn."""
    admission = Admission("m", capacity=capacity, max_waiting=max_waiting)
    assert (admission.running, admission.waiting) == (0, 0)
    order: list[str] = []
    running = [Request(admission, f"r{i}", order) for i in range(capacity)]
    for request in running:
        await request.admitted()
    waiters = [await queued(admission, f"w{i}", order, i + 1) for i in range(max_waiting)]
    assert (admission.running, admission.waiting) == (capacity, max_waiting)
    with pytest.raises(Overloaded):
        await _enter(admission)
    for request in [*running, *waiters]:
        await request.finish()
    assert order == [f"r{i}" for i in range(capacity)] + [f"w{i}" for i in range(max_waiting)]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_waiter_cancelled_as_the_slot_is_released_is_simply_cancelled() -> None:
    """Review finding: release and cancellation in one loop iteration raised ValueError."""
    admission = Admission("m", capacity=1, max_waiting=4)
    gate = asyncio.get_running_loop().create_future()

    async def hold() -> None:
        async with admission.slot():
            await gate

    async def wait() -> None:
        async with admission.slot():
            pass

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0)
    gate.set_result(None)
    waiter.cancel()
    results = await asyncio.wait_for(asyncio.gather(holder, waiter, return_exceptions=True), 5)
    assert results[0] is None and isinstance(results[1], asyncio.CancelledError)
    assert (admission.running, admission.waiting) == (0, 0)
