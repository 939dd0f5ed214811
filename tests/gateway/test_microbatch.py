"""Micro-batching: concurrent requests scored in one call, each answered with its own rows."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given
from hypothesis import strategies as st

from gateway.microbatch import MicroBatcher, merged
from gateway.payload import Columns


def columns(*values: float, name: str = "x") -> Columns:
    return Columns(values={name: list(values)}, n_rows=len(values))


class Model:
    """Doubles `x`; refuses a negative one; records every call's rows."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def score(self, version: str, given: Columns) -> tuple[list, list, float]:
        self.calls.append(list(given.values["x"]))
        if any(value < 0 for value in given.values["x"]):
            raise ValueError(f"{version}: negative x")
        return ([version] * given.n_rows, [2 * v for v in given.values["x"]], 0.5)


def split(result: tuple[list, list, float], start: int, end: int) -> tuple[list, list, float]:
    versions, doubled, latency = result
    return versions[start:end], doubled[start:end], latency


def batcher(model: Model, *, max_rows: int = 64, max_wait_s: float = 0.002) -> MicroBatcher:
    return MicroBatcher(model.score, split, max_rows=max_rows, max_wait_s=max_wait_s)


async def request(batching: MicroBatcher, version: str, given: Columns, delay_s: float = 0.0):
    batching.entered()
    try:
        await asyncio.sleep(delay_s)  # reading the body, checking the id
        return await batching.score(version, given)
    finally:
        batching.left()


def test_requests_scored_together_get_their_own_rows_from_one_call() -> None:
    model = Model()
    batching = batcher(model)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)),
            request(batching, "v1", columns(2.0, 3.0)),
            request(batching, "v1", columns(4.0)),
        )

    answers = asyncio.run(main())
    assert [doubled for _, doubled, _ in answers] == [[2.0], [4.0, 6.0], [8.0]]
    assert model.calls == [[1.0, 2.0, 3.0, 4.0]]


def test_a_request_on_its_way_is_waited_for_and_a_lone_one_is_not() -> None:
    model = Model()
    batching = batcher(model, max_wait_s=5.0)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)),
            request(batching, "v1", columns(2.0), delay_s=0.01),
        )

    asyncio.run(main())
    assert model.calls == [[1.0, 2.0]]

    started = time.monotonic()
    asyncio.run(request(batching, "v1", columns(3.0)))
    assert time.monotonic() - started < 1.0  # nothing else in flight: not the 5 s bound
    assert model.calls[-1] == [3.0]


def test_the_wait_is_bounded_by_max_wait() -> None:
    model = Model()
    batching = batcher(model, max_wait_s=0.01)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)),
            request(batching, "v1", columns(2.0), delay_s=0.5),
        )

    asyncio.run(main())
    assert model.calls == [[1.0], [2.0]]


def test_versions_are_scored_apart_and_a_full_batch_does_not_wait() -> None:
    model = Model()
    batching = batcher(model, max_rows=2, max_wait_s=5.0)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)),
            request(batching, "v2", columns(2.0)),
            request(batching, "v1", columns(3.0, 4.0)),
        )

    started = time.monotonic()
    answers = asyncio.run(main())
    assert time.monotonic() - started < 1.0
    assert [versions for versions, _, _ in answers] == [["v1"], ["v2"], ["v1", "v1"]]
    assert sorted(model.calls) == [[1.0], [2.0], [3.0, 4.0]]


def test_a_request_the_model_refuses_fails_alone() -> None:
    model = Model()
    batching = batcher(model)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)),
            request(batching, "v1", columns(-1.0)),
            request(batching, "v1", columns(2.0)),
            return_exceptions=True,
        )

    first, refused, last = asyncio.run(main())
    assert first[1] == [2.0] and last[1] == [4.0]
    assert isinstance(refused, ValueError) and "negative x" in str(refused)


def test_requests_with_other_columns_are_not_merged() -> None:
    model = Model()
    batching = batcher(model)
    other = Columns(values={"x": [5.0], "y": [1.0]}, n_rows=1)

    async def main():
        return await asyncio.gather(
            request(batching, "v1", columns(1.0)), request(batching, "v1", other)
        )

    asyncio.run(main())
    assert sorted(model.calls) == [[1.0], [5.0]]


@given(st.lists(st.lists(st.floats(allow_nan=False), min_size=1, max_size=5), min_size=1))
def test_merged_rows_split_back_into_each_requests_own(rows: list[list[float]]) -> None:
    parts = [columns(*values) for values in rows]
    joined = merged(parts)
    assert joined.n_rows == sum(len(values) for values in rows)
    start = 0
    for values in rows:
        assert joined.values["x"][start : start + len(values)] == values
        start += len(values)
