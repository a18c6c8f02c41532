"""What a trial's objective prints, warns and logs, captured on the worker for the driver.

A capture puts a router in place of ``sys.stdout`` and of ``sys.stderr`` (:class:`_Router`)
when they are not routers already, and never takes them out: a router holds the stream it
stands in for, so no stream object that another thread may hold (CPython's ``print`` keeps
``sys.stdout`` between its writes) is ever freed under it. Each write goes to the trial
being captured by the writing thread (or the process's only one: a Spark task is a process
of its own) and, unless the process is quiet, where it went before (the executor's logs).
Records of the ``logging`` module reach the copy through those streams (Python's last-resort
handler writes to ``sys.stderr``) or, when the root logger has handlers of its own, through a
handler added to it.

A *quiet* process (:func:`quiet_streams`, on local-mode Spark, whose executors write to the
driver's own terminal) keeps what trials print for the driver's echo only, and sends what is
printed outside trials, native libraries' lines included (its file descriptors 1 and 2 are
redirected), to a log file: each line reaches the terminal once.

A sender thread ships the buffer every quarter second; the objective never waits for the
network. Each trial ships at most :data:`MAX_CHARS` characters (then one line says what was
left out).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any
from typing import TextIO

from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection

_logger = logging.getLogger(__name__)

#: The most text one trial ships to the driver, in characters.
MAX_CHARS = m.MAX_TRIAL_OUTPUT
#: Seconds between two shipments.
SEND_EVERY = 0.25


class _Router(io.TextIOBase):
    """Stands in for ``sys.stdout`` or ``sys.stderr`` for the rest of the process: each write
    goes to the trial being captured and, unless the process is quiet, to ``target`` (the
    stream it replaced); everything else (fileno, encoding, isatty ...) is ``target``'s."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, s: str) -> int:
        if _streams.copy(s):
            if not _streams.quiet:
                self._target.write(s)
        elif _streams.log is not None:
            _streams.log.write(s.encode("utf-8", "replace"))
        else:
            self._target.write(s)
        return len(s)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never recurse for attributes of its own
            raise AttributeError(name)
        return getattr(self._target, name)


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
    """The process's routers and the trials being captured.

    When several workers share a process (threads), each write goes to the trial of the
    thread that writes it; when one does, everything written while its trial runs is that
    trial's, whichever thread writes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, TrialOutput] = {}
        self._copier = _RecordCopier()
        #: What trials print reaches the driver only (see :func:`quiet_streams`).
        self.quiet = False
        #: Where a quiet process writes what is printed outside trials (unbuffered).
        self.log: io.RawIOBase | None = None

    def install(self) -> None:
        """Put routers in place of the standard streams that are not routers (the first
        capture of the process; or someone set streams of their own since)."""
        with self._lock:
            if not isinstance(sys.stdout, _Router):
                sys.stdout = _Router(sys.stdout)
            if not isinstance(sys.stderr, _Router):
                sys.stderr = _Router(sys.stderr)
            root = logging.getLogger()
            # Records reach the routers through Python's last-resort handler, unless the root
            # logger has handlers of its own (which hold the original streams).
            if root.handlers and self._copier not in root.handlers:
                root.addHandler(self._copier)

    def enter(self, output: TrialOutput) -> None:
        self.install()
        with self._lock:
            self._active[threading.get_ident()] = output

    def leave(self) -> None:
        with self._lock:
            self._active.pop(threading.get_ident(), None)

    def copy(self, text: str) -> bool:
        """Give ``text`` to the trial being captured; returns whether one took it."""
        active = self._active
        if len(active) == 1:
            output = next(iter(active.values()), None)
        else:
            output = active.get(threading.get_ident())
        if output is None:
            return False
        output.add(text)
        return True


_streams = _Streams()


def quiet_streams(log_path: str) -> None:
    """Make this process quiet: trials' output reaches the driver only, everything else
    printed (by Python or by native code on file descriptors 1 and 2) goes to ``log_path``.

    For workers whose streams are the driver's terminal (local-mode Spark); call it before
    anything else runs in the process (before the objective is unpickled: importing a module
    may print). Idempotent.
    """
    if _streams.quiet:
        return
    _streams.install()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    _streams.log = io.FileIO(log_fd, "w", closefd=False)
    _streams.quiet = True
    for fd in (1, 2):
        read, write = os.pipe()
        os.dup2(write, fd)
        os.close(write)
        threading.Thread(
            target=_pump, args=(read, log_fd), name=f"optuna-spark-fd{fd}", daemon=True
        ).start()


def _pump(read: int, log_fd: int) -> None:
    """What reaches a redirected file descriptor: the trial's if one is captured, else the
    log file's."""
    while True:
        try:
            chunk = os.read(read, 65536)
        except OSError:
            return
        if not chunk:
            return
        if not _streams.copy(chunk.decode("utf-8", "replace")):
            with contextlib.suppress(OSError):
                os.write(log_fd, chunk)


class TrialOutput:
    """Captures each trial's output while :meth:`capture` runs, and ships it to the driver."""

    def __init__(self, conn: Connection, run_id: str) -> None:
        self._conn = conn
        self._own_run_id = self._run_id = run_id
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
            room = MAX_CHARS - self._shipped
            if len(text) > room:  # keep the part that fits
                self._dropped += len(text) - max(0, room)
                text = text[: max(0, room)]
            if text:
                self._shipped += len(text)
                self._buffer.append(text)

    @contextlib.contextmanager
    def capture(self, trial_id: int, run_id: str | None = None) -> Iterator[None]:
        """Capture the block's output as trial ``trial_id``'s (of ``run_id``, when it is not
        the worker's own run, as in a pool); shipped in full when it ends."""
        with self._lock:
            self._trial_id, self._buffer, self._shipped, self._dropped = trial_id, [], 0, 0
            self._run_id = run_id or self._own_run_id
        _streams.enter(self)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):  # what the objective left in buffers
                with contextlib.suppress(Exception):
                    stream.flush()
            _streams.leave()
            with self._lock:
                if self._dropped:
                    self._buffer.append(
                        f"[optuna-spark: {self._dropped} more characters of this trial's "
                        f"output were not sent; at most {MAX_CHARS} are]\n"
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
                run_id = self._run_id
            if trial_id is not None and chunks:
                self._conn.send(m.TrialOutput(run_id, trial_id, "".join(chunks)))
