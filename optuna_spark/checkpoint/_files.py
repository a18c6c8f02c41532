"""A checkpoint's files as one artifact: a plain tar stream, written and read in one pass."""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path
from typing import IO


def pack(path: Path) -> IO[bytes]:
    """``path`` (a file, or a directory and everything in it) as a tar file, rewound.

    The archive is spooled to a temporary file (in memory up to 8 MiB), never kept whole in
    memory for a large checkpoint.
    """
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - returned open
    with tarfile.open(fileobj=out, mode="w") as tar:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                tar.add(child, arcname=child.name)
        else:
            tar.add(path, arcname=path.name)
    out.seek(0)
    return out


def unpack(reader: IO[bytes], prefix: str) -> Path:
    """Extract the tar stream ``reader`` into a new temporary directory; returns it.

    Only regular files and directories inside that directory are written (``tarfile``'s
    ``data`` filter: no absolute paths, no links out, no device files).
    """
    dest = Path(tempfile.mkdtemp(prefix=prefix))
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        tar.extractall(dest, filter="data")
    return dest


def size_of(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file ``path``)."""
    if not path.is_dir():
        return path.stat().st_size
    return sum(
        (Path(root) / name).stat().st_size for root, _, names in os.walk(path) for name in names
    )
