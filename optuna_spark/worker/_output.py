"""What a trial's objective prints, warns and logs, captured on the worker for the driver.

While an objective runs, ``sys.stdout`` and ``sys.stderr`` are tees: everything still goes
where it went (the executor's logs), and a copy is buffered for the driver. Records of the
``logging`` module reach the copy through those streams (Python's last-resort handler writes
to ``sys.stderr``) or, when the root logger has handlers of its own, through a handler added
to it for the trial. A sender thread ships the buffer every quarter second; the objective
never waits for the network. Each trial ships at most :data:`MAX_BYTES` (then one line says
what was left out).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any
from typing import TextIO

from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection

_logger = logging.getLogger(__name__)

#: The most text one trial ships to the driver.
MAX_BYTES = 1 << 20
#: Seconds between two shipments.
SEND_EVERY = 0.25


class _Tee(io.TextIOBase):
    """Writes to ``stream`` and copies into ``sink``; everything else is ``stream``'s."""

    def __init__(self, stream: TextIO, sink: TrialOutput) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        self._sink.add(s)
        return n if isinstance(n, int) else len(s)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty, buffer ...
        return getattr(self._stream, name)


class _RecordCopier(logging.Handler):
    def __init__(self, sink: TrialOutput) -> None:
        super().__init__()
        self._sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink.add(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class TrialOutput:
    """Captures each trial's output while :meth:`capture` runs, and ships it to the driver."""

    def __init__(self, conn: Connection, run_id: str) -> None:
        self._conn = conn
        self._run_id = run_id
        self._lock = threading.Lock()  # the buffer
        self._ship_lock = threading.Lock()  # one shipment at a time, in order
        self._wake = threading.Event()
        self._stopped = False
        self._trial_id: int | None = None
        self._buffer: list[str] = []
        self._shipped = 0
        self._dropped = 0
        self._thread = threading.Thread(target=self._loop, name="optuna-spark-output", daemon=True)
        self._thread.start()

    def add(self, text: str) -> None:
        """Keep ``text`` for the trial being captured (dropped once it has shipped enough)."""
        if not text:
            return
        with self._lock:
            if self._trial_id is None:
                return
            if self._shipped + len(text) > MAX_BYTES:
                self._dropped += len(text)
                return
            self._shipped += len(text)
            self._buffer.append(text)

    @contextlib.contextmanager
    def capture(self, trial_id: int) -> Iterator[None]:
        """Capture the block's output as trial ``trial_id``'s; shipped in full when it ends."""
        with self._lock:
            self._trial_id, self._buffer, self._shipped, self._dropped = trial_id, [], 0, 0
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, self), _Tee(err, self)
        root = logging.getLogger()
        copier = _RecordCopier(self) if root.handlers else None
        if copier is not None:
            root.addHandler(copier)
        try:
            yield
        finally:
            if copier is not None:
                root.removeHandler(copier)
            sys.stdout, sys.stderr = out, err
            with self._lock:
                if self._dropped:
                    self._buffer.append(
                        f"[optuna-spark: {self._dropped} more characters of this trial's "
                        f"output were not sent; at most {MAX_BYTES} are]\n"
                    )
            self._ship()  # before the tell: the driver has all of it when the trial ends
            with self._lock:
                self._trial_id = None

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(SEND_EVERY)
            try:
                self._ship()
            except (ConnectionError, OSError):
                return  # the worker loop sees the connection is gone
            except Exception:
                _logger.debug("Shipping a trial's output failed.", exc_info=True)

    def _ship(self) -> None:
        with self._ship_lock:
            with self._lock:
                trial_id, chunks, self._buffer = self._trial_id, self._buffer, []
            if trial_id is not None and chunks:
                self._conn.send(m.TrialOutput(self._run_id, trial_id, "".join(chunks)))
