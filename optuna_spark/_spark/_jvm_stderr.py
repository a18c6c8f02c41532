"""The embedded JVM's standard error, less the one notice that no JVM option can silence.

Spark 4's launcher always adds the ``jdk.incubator.vector`` module, and the JVM then prints
``WARNING: Using incubator modules: jdk.incubator.vector`` on its own at start-up, before any
logging configuration applies. While the embedded session's JVM is launched, file descriptor
2 is a pipe, so the JVM (and the Spark Python workers it starts later) inherit that pipe as
their standard error; a daemon thread forwards every line to the real standard error except
that notice. The process's own descriptor 2 is restored as soon as the session exists.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

#: Lines the JVM prints by itself that say nothing to a user of this package.
DROPPED = (b"WARNING: Using incubator modules: jdk.incubator.vector",)


@contextlib.contextmanager
def quiet_jvm_start() -> Iterator[None]:
    """Launch a JVM inside this block to have its standard error filtered (see the module)."""
    try:
        sys.stderr.flush()
        target = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 to share (an embedded interpreter)
        yield
        return
    read, write = os.pipe()
    forward = threading.Thread(
        target=_forward, args=(read, target), name="optuna-spark-jvm-stderr", daemon=True
    )
    # Everything after the pipe exists is undone by ``finally``, so that a Ctrl-C at any point
    # (the user's, while Spark starts) never leaves descriptor 2 on a pipe that nobody reads
    # once this process shuts down: its traceback would be lost.
    try:
        forward.start()
        os.dup2(write, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(target, 2)  # this process writes to the real stderr again; the JVM keeps the pipe
        os.close(write)  # the forwarding thread ends, closing its ends, once the JVM's close


def _forward(read: int, target: int) -> None:
    """Copy lines from ``read`` to ``target`` until every writer has closed the pipe."""
    with os.fdopen(read, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if line.rstrip() not in DROPPED)
            if out:
                _write_all(target, out)
        if pending and pending.rstrip() not in DROPPED:
            _write_all(target, pending)
    os.close(target)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the terminal went away: drop, never block the JVM
        while data:
            data = data[os.write(fd, data) :]
