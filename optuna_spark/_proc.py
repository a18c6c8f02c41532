"""What Linux's ``/proc`` says about a process: its start time, parent and command line.

Read by both sides: the coordinator tells a dead driver from a live one by its start time,
and a worker finds the executor JVM it serves among its ancestors.
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), ``None`` if it is gone.

    With the start time, a pid reused by another process is not taken for the first one.
    Where ``/proc`` cannot be read, only whether some process has the pid is known: ``"?"``.
    """
    try:
        return _stat_fields(pid)[19].decode()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return "?"


def parent(pid: int) -> int | None:
    """The parent of process ``pid``, ``None`` when it cannot be read."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def command_line(pid: int) -> list[bytes] | None:
    """The arguments process ``pid`` was started with, ``None`` when they cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None
