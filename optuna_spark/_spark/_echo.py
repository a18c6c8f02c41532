"""Echo of what objectives print on the workers, on the driver's screen, line by line."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from tqdm.auto import tqdm


class OutputEcho:
    """Writes each line a trial's objective printed as ``[trial N] line``, above any progress
    bar (``tqdm.write``); a line still unfinished waits for its end, or for :meth:`close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial: dict[tuple[str, int], str] = {}

    def __call__(self, number: int, text: str, study: str = "") -> None:
        key = (study, number)
        with self._lock:
            lines = (self._partial.pop(key, "") + text).split("\n")
            if lines[-1]:
                self._partial[key] = lines[-1]
            for line in lines[:-1]:
                tqdm.write(f"{_prefix(key)} {line.rstrip(chr(13))}", file=sys.stderr)

    def of_study(self, study: str) -> Callable[[int, str], None]:
        """The echo of one study's trials among many: ``[study trial N] line``."""
        return lambda number, text: self(number, text, study)

    def close(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, {}
        for key, line in sorted(partial.items()):
            tqdm.write(f"{_prefix(key)} {line}", file=sys.stderr)


def _prefix(key: tuple[str, int]) -> str:
    study, number = key
    return f"[{study} trial {number}]" if study else f"[trial {number}]"
