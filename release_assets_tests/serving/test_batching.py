"""Requests arriving while their model is busy are answered together in its next batch (serving/batching.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from release_assets.serving.batching import Batcher
from release_assets_tests.serving import own_loop


class Model:
    """Records each batch it was given; a batch waits on ``gate`` while it runs (so more requests queue)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, items: list[int]) -> list[object]:
        self.gate.wait(5)
        self.batches.append(list(items))
        return [ValueError(f"item {i} is refused") if i < 0 else i * 10 for i in items]


def test_an_idle_model_answers_at_once_alone():
    async def go() -> tuple[int, list[list[int]]]:
        model, batcher = Model(), Batcher()
        return await batcher.submit("iris", 4, model.run), model.batches

    assert own_loop.run(go()) == (40, [[4]])


def test_requests_arriving_while_a_batch_runs_form_the_next_one_up_to_max_batch():
    async def go() -> tuple[list[object], list[list[int]], int, int]:
        model, batcher = Model(), Batcher(max_batch=3)
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit("helpdesk", 0, model.run))
        await asyncio.sleep(0.05)  # the first batch ([0]) is running and held
        rest = [asyncio.ensure_future(batcher.submit("helpdesk", i, model.run)) for i in range(1, 8)]
        await asyncio.sleep(0.05)
        model.gate.set()
        answers = await asyncio.gather(first, *rest)
        return answers, model.batches, batcher.batches, batcher.items

    answers, batches, count, items = own_loop.run(go())
    assert answers == [i * 10 for i in range(8)]
    assert batches == [[0], [1, 2, 3], [4, 5, 6], [7]] and (count, items) == (4, 8)


def test_each_key_has_its_own_queue():
    async def go() -> list[list[int]]:
        model, batcher = Model(), Batcher()
        await asyncio.gather(
            batcher.submit(("helpdesk", "v1"), 1, model.run), batcher.submit(("helpdesk", "v2"), 2, model.run)
        )
        return model.batches

    assert sorted(own_loop.run(go())) == [[1], [2]]


def test_an_item_refused_raises_to_its_caller_alone():
    async def go() -> list[object]:
        model, batcher = Model(), Batcher()
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit("k", 1, model.run))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(batcher.submit("k", i, model.run)) for i in (2, -1, 3)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(first, *waiting, return_exceptions=True)

    one, two, refused, three = own_loop.run(go())
    assert (one, two, three) == (10, 20, 30)
    assert isinstance(refused, ValueError) and str(refused) == "item -1 is refused"


def test_a_batch_that_fails_whole_fails_its_callers_and_the_next_batch_still_runs():
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("the model crashed")
        if len(calls) == 2:
            return []  # a result missing: every item of the batch gets an error, not a wrong answer
        return items

    async def go() -> list[object]:
        batcher = Batcher()
        crashed = await asyncio.gather(batcher.submit("k", 1, flaky), return_exceptions=True)
        short = await asyncio.gather(batcher.submit("k", 2, flaky), return_exceptions=True)
        fine = await batcher.submit("k", 3, flaky)
        return [*crashed, *short, fine]

    crashed, short, fine = own_loop.run(go())
    assert isinstance(crashed, RuntimeError) and str(crashed) == "the model crashed"
    assert isinstance(short, RuntimeError) and "a batch of 1 gave 0 results" in str(short)
    assert fine == 3


def test_a_caller_that_left_is_not_run():
    async def go() -> list[list[int]]:
        model, batcher = Model(), Batcher()
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit("k", 1, model.run))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit("k", 2, model.run))
        kept = asyncio.ensure_future(batcher.submit("k", 3, model.run))
        await asyncio.sleep(0.01)
        gone.cancel()
        model.gate.set()
        await asyncio.gather(first, kept)
        return model.batches

    assert own_loop.run(go()) == [[1], [3]]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(max_batch=0)


def test_a_batch_whose_metric_hook_fails_still_answers_and_a_cancelled_drain_leaves_nobody_waiting():
    def broken_hook(key, size):
        raise OSError("the metrics folder is gone")

    async def go() -> tuple[object, bool]:
        batcher = Batcher(on_batch=broken_hook)
        failed = await asyncio.gather(batcher.submit("k", 1, Model().run), return_exceptions=True)
        # A drain cancelled while its batch runs (the server stopping): its callers are told, not left waiting.
        model, stopping = Model(), Batcher()
        model.gate.clear()
        running = asyncio.ensure_future(stopping.submit("k", 1, model.run))
        await asyncio.sleep(0.05)
        stopping._draining["k"].cancel()
        done, _ = await asyncio.wait([running], timeout=2)
        model.gate.set()
        return failed[0], bool(done) and running.cancelled()

    failed, told = own_loop.run(go())
    assert isinstance(failed, OSError) and told


def test_each_caller_of_a_failed_batch_gets_an_exception_of_its_own():
    gate = threading.Event()

    def first_alone_then_crash(items):
        gate.wait(5)
        if items == [0]:
            return items
        raise RuntimeError("the model crashed")

    async def go() -> list[BaseException]:
        batcher = Batcher()
        first = asyncio.ensure_future(batcher.submit("k", 0, first_alone_then_crash))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit("k", i, first_alone_then_crash)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        gate.set()
        await first
        return await asyncio.gather(*rest, return_exceptions=True)

    one, two = own_loop.run(go())
    assert str(one) == str(two) == "the model crashed" and one is not two
