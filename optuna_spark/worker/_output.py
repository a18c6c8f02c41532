"""What a trial's objective prints, warns and logs, captured on the worker for the driver.

While an objective runs, ``sys.stdout`` and ``sys.stderr`` are tees: everything still goes
where it went (the executor's logs), and a copy is buffered for the driver. Records of the
``logging`` module reach the copy through those streams (Python's last-resort handler writes
to ``sys.stderr``) or, when the root logger has handlers of its own, through a handler added
to it meanwhile. The tees are installed once per process, however many worker threads it
runs (:class:`_Streams`). A sender thread ships the buffer every quarter second; the objective
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
MAX_BYTES = m.MAX_TRIAL_OUTPUT
#: Seconds between two shipments.
SEND_EVERY = 0.25


class _Tee(io.TextIOBase):
    """Writes to ``stream`` and copies to the trial being captured; everything else (fileno,
    encoding, isatty ...) is ``stream``'s."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        _streams.copy(s)
        return n if isinstance(n, int) else len(s)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _RecordCopier(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _streams.copy(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Streams:
    """The process's streams, teed once while any trial of this process is captured.

    A Spark task is a process of its own: everything written while its trial runs is that
    trial's, whichever thread writes it. When several workers share a process (threads),
    each write goes to the trial of the thread that writes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, TrialOutput] = {}
        self._saved: tuple[TextIO, TextIO] | None = None
        self._copier: _RecordCopier | None = None

    def enter(self, output: TrialOutput) -> None:
        with self._lock:
            if not self._active:
                self._saved = (sys.stdout, sys.stderr)
                sys.stdout, sys.stderr = _Tee(sys.stdout), _Tee(sys.stderr)
                root = logging.getLogger()
                # Records reach the tees through Python's last-resort handler, unless the
                # root logger has handlers of its own (which hold the original streams).
                if root.handlers:
                    self._copier = _RecordCopier()
                    root.addHandler(self._copier)
            self._active[threading.get_ident()] = output

    def leave(self) -> None:
        with self._lock:
            self._active.pop(threading.get_ident(), None)
            if self._active or self._saved is None:
                return
            out, err = self._saved
            if isinstance(sys.stdout, _Tee):  # unless the objective replaced it itself
                sys.stdout = out
            if isinstance(sys.stderr, _Tee):
                sys.stderr = err
            self._saved = None
            if self._copier is not None:
                logging.getLogger().removeHandler(self._copier)
                self._copier = None

    def copy(self, text: str) -> None:
        active = self._active
        if len(active) == 1:
            output = next(iter(active.values()), None)
        else:
            output = active.get(threading.get_ident())
        if output is not None:
            output.add(text)


_streams = _Streams()


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
        _streams.enter(self)
        try:
            yield
        finally:
            _streams.leave()
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
