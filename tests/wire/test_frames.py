"""Frames: a declared length costs nothing until its bytes arrive, and a body has one
deadline however it trickles in."""

from __future__ import annotations

import socket
import struct
import threading
import tracemalloc

import pytest

from optuna_spark.wire import _frames as frames


class _Trickle:
    """A socket whose peer sent a header declaring ``size`` bytes, then ``sent`` of them."""

    def __init__(self, size: int, sent: int) -> None:
        self._data = [struct.pack(">I", size), b"x" * sent]
        self._timeout: float | None = None

    def recv(self, n: int) -> bytes:
        if self._data:
            head = self._data[0][:n]
            self._data[0] = self._data[0][n:]
            if not self._data[0]:
                self._data.pop(0)
            return head
        raise TimeoutError("timed out")  # the peer stopped sending

    def gettimeout(self) -> float | None:
        return self._timeout

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout


def test_a_header_that_declares_much_and_sends_little_costs_little() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TimeoutError):
            frames.recv_frame(_Trickle(16 << 20, 10), 16 << 20)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # not the 16 MiB the header declared


def test_a_body_must_arrive_whole_by_one_deadline() -> None:
    left, right = socket.socketpair()
    stop = threading.Event()

    def drip() -> None:
        left.sendall(struct.pack(">I", 1000))
        while not stop.wait(0.05):  # a byte every 50 ms: each read is quick, the whole slow
            try:
                left.send(b"x")
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    right.settimeout(5.0)  # per read: never reached
    try:
        with pytest.raises(TimeoutError):
            frames.recv_frame(right, 4096, body_timeout=0.5)
        assert right.gettimeout() == 5.0  # restored for the next header
    finally:
        stop.set()
        dripper.join(5)
        left.close()
        right.close()
