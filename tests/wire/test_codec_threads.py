"""Decoders are built one at a time, once per type, however many threads ask at once.

msgspec 0.22 crashed a driver (segmentation fault) when 1,000 connection threads built the
server's decoder at the same moment; building one must never overlap another.
"""

from __future__ import annotations

import threading
from typing import Any
from typing import Union

import msgspec
import pytest

from optuna_spark.wire import _codec as codec
from optuna_spark.wire import messages as m


class Fresh(msgspec.Struct, frozen=True, array_like=True, tag="fresh"):
    trial_id: int
    values: list[float]
    info: m.WorkerInfo


def test_threads_asking_for_a_new_decoder_build_it_once_and_never_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = msgspec.msgpack.Decoder
    building = 0
    overlaps = 0
    builds = 0
    count = threading.Lock()
    others_waiting = threading.Event()

    def watched(type_: Any) -> Any:
        nonlocal building, overlaps, builds
        with count:
            building += 1
            builds += 1
            overlaps += building > 1
        # Give the other threads every chance to start building too (they are all released
        # at once by the barrier below); with the lock they cannot.
        others_waiting.wait(0.2)
        try:
            return real(type_)
        finally:
            with count:
                building -= 1

    monkeypatch.setattr(msgspec.msgpack, "Decoder", watched)
    request_type: Any = Union[Fresh, m.Ping]  # noqa: UP007 (a runtime union)
    body = codec.encode(Fresh(3, [1.0], m.WorkerInfo("h", 1, partition=1)))
    barrier = threading.Barrier(16)
    decoded: list[Any] = []
    errors: list[BaseException] = []

    def first_request() -> None:
        try:
            barrier.wait()
            decoded.append(codec.decode(body, request_type))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert decoded == [Fresh(3, [1.0], m.WorkerInfo("h", 1, partition=1))] * 16
    assert (builds, overlaps) == (1, 0)
