"""Every ```python block of README.md and docs/ runs as pasted: in a fresh process, in an
empty folder, and (for blocks that keep a study in a storage) twice in a row, with no warning
raised by the block's own code (a deprecated API, say).

Blocks that are not meant to run (signatures, shell output) are fenced ```text instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: A fenced block, possibly indented (inside a list item); its closing fence has its indent.
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```python[ ]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
#: The Spark Connect server the README's Connect block talks to; the test runs it elsewhere.
CONNECT_URL = "sc://localhost:15002"


def _marks(source: str) -> list[pytest.MarkDecorator]:
    """The suite's markers for what a block needs."""
    marks = []
    if re.search(r"^from optuna_spark import .*\bSparkExecutor\b", source, re.M):
        marks += [pytest.mark.spark, pytest.mark.slow]  # a Spark session of its own
    if CONNECT_URL in source:
        marks.append(pytest.mark.connect)
    if re.search(r"^\s*(import keras|from optuna_integration.keras)", source, re.M):
        marks.append(pytest.mark.tensorflow)
    if re.search(r"^\s*(import torch|import lightning)", source, re.M):
        marks.append(pytest.mark.torch)
    return marks


def _blocks() -> list[object]:
    """One test per distinct block, named after the page and line where it first appears."""
    seen: set[str] = set()
    out: list[object] = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            source = textwrap.dedent(match["body"])
            if source in seen:
                continue  # the same block on two pages (README and the site's home)
            seen.add(source)
            line = text.count("\n", 0, match.start()) + 1
            name = f"{page.relative_to(ROOT)}:{line}"
            out.append(pytest.param(source, id=name, marks=_marks(source)))
    return out


def _run(script: Path, folder: Path) -> str:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, script.name],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, output[-4000:]
    # Warnings raised by the block's own lines name the block's file (a deprecated API).
    own = re.findall(rf"^.*{re.escape(script.name)}:\d+: \w*Warning.*$", output, re.M)
    assert own == [], "\n".join(own)
    return output


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1, started on first use (Connect blocks only)."""
    from tests._helpers import start_connect_server

    server, url = start_connect_server(tmp_path_factory.mktemp("spark-connect"), 2)
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_blocks_are_found() -> None:
    """The README's blocks are all there (a fence the pattern misses would go untested)."""
    readme = (ROOT / "README.md").read_text()
    assert len(FENCE.findall(readme)) == readme.count("```python") >= 8


@pytest.mark.timeout(600)
@pytest.mark.parametrize("source", _blocks())
def test_block_runs_as_pasted(source: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if CONNECT_URL in source:
        source = source.replace(CONNECT_URL, request.getfixturevalue("connect_url"))
    script = tmp_path / "block.py"
    script.write_text(source)
    _run(script, tmp_path)
    if re.search(r"create_study\([^)]*storage=", source):
        _run(script, tmp_path)  # a second run finds the first one's study
