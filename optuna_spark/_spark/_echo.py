"""Echo of what objectives print on the workers, on the driver's screen, line by line."""

from __future__ import annotations

import sys
import threading

from tqdm.auto import tqdm


class OutputEcho:
    """Writes each line a trial's objective printed as ``[trial N] line``, above any progress
    bar (``tqdm.write``); a line still unfinished waits for its end, or for :meth:`close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial: dict[int, str] = {}

    def __call__(self, number: int, text: str) -> None:
        with self._lock:
            lines = (self._partial.pop(number, "") + text).split("\n")
            if lines[-1]:
                self._partial[number] = lines[-1]
            for line in lines[:-1]:
                tqdm.write(f"[trial {number}] {line.rstrip(chr(13))}", file=sys.stderr)

    def close(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, {}
        for number, line in sorted(partial.items()):
            tqdm.write(f"[trial {number}] {line}", file=sys.stderr)
