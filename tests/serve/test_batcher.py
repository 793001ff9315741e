"""Adaptive batching without a timer: a lone request is scored at once, requests that arrive while a
prediction runs go together into the next one (up to max_requests), every request gets its own
result, and a failing or abandoned request costs only itself."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeray.serve.batcher import Batcher

pytestmark = pytest.mark.fast


class Scorer:
    """score_many for the tests: doubles each item; records batches; can hold a batch until released."""

    def __init__(self, hold_first=False, fail_on=None):
        self.batches, self.fail_on = [], fail_on
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.release.wait(10)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * i for i in items]


def test_a_lone_request_is_scored_at_once():
    scorer = Scorer()
    batcher = Batcher(scorer, 64)

    async def run():
        began = time.perf_counter()
        result = await batcher.submit(21)
        return result, time.perf_counter() - began

    result, took = asyncio.run(run())
    assert result == 42 and scorer.batches == [[21]] and took < 0.5     # no timer to wait out


def test_requests_arriving_during_a_prediction_go_together_into_the_next_one():
    scorer = Scorer(hold_first=True)
    batcher = Batcher(scorer, 4)

    async def run():
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)                      # the first is being scored (held)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        scorer.release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(run())
    assert first == 0 and rest == [2 * i for i in range(1, 11)]
    assert scorer.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]     # capped at max_requests
    assert (batcher.batches, batcher.items) == (4, 11)


def test_a_failing_batch_fails_only_its_own_requests():
    scorer = Scorer(hold_first=True, fail_on=3)
    batcher = Batcher(scorer, 2)

    async def run():
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        later = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2, 3, 4, 5)]
        await asyncio.sleep(0.05)
        scorer.release.set()
        return [await first] + list(await asyncio.gather(*later, return_exceptions=True))

    results = asyncio.run(run())
    assert results[:3] == [0, 2, 4] and results[5] == 10                   # batches [0], [1, 2], [3, 4], [5]
    assert all(isinstance(r, ValueError) and "cannot score 3" in str(r) for r in results[3:5])


def test_an_abandoned_request_does_not_disturb_the_others():
    scorer = Scorer(hold_first=True)
    batcher = Batcher(scorer, 8)

    async def run():
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        gone, stays = asyncio.ensure_future(batcher.submit(1)), asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()                                  # its client disconnected while it waited
        scorer.release.set()
        return await first, await stays, gone.cancelled()

    assert asyncio.run(run()) == (0, 4, True)
    assert scorer.batches == [[0], [2]]                # the abandoned request was not even scored


def test_a_scorer_that_returns_the_wrong_number_of_results_fails_that_batch():
    batcher = Batcher(lambda items: [1], 8)

    async def run():
        both = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)   # one batch of 2
        return both, await batcher.submit(3)                                                      # alone: 1 result

    both, alone = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) and "1 result(s) for 2 request(s)" in str(r) for r in both), both
    assert alone == 1


def test_max_requests_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda items: items, 0)


@settings(max_examples=40, deadline=None)
@given(arrivals=st.lists(st.tuples(st.integers(-1000, 1000), st.sampled_from([0, 0, 0, 0.001, 0.003])), max_size=40),
       max_requests=st.integers(1, 8))
def test_every_request_gets_its_own_result_whatever_the_arrivals(arrivals, max_requests):
    batches = []

    def score_many(items):
        batches.append(len(items))
        time.sleep(0.002)
        return [(i, i * 3) for i in items]

    batcher = Batcher(score_many, max_requests)

    async def run():
        tasks = []
        for item, gap in arrivals:
            tasks.append(asyncio.ensure_future(batcher.submit(item)))
            if gap:
                await asyncio.sleep(gap)
        return await asyncio.gather(*tasks)

    results = asyncio.run(run())
    assert results == [(item, item * 3) for item, _ in arrivals]
    assert sum(batches) == len(arrivals) and all(1 <= b <= max_requests for b in batches)
    assert batcher._runner is None and not batcher._waiting          # idle again: nothing left behind
