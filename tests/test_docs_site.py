"""The documentation site builds from the docstrings with every warning an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.docs
@pytest.mark.timeout(300)
def test_the_site_builds_strictly_with_the_api_reference(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    pages = {
        "api/executor/index.html": ["SparkExecutor", "coordinator", "get_trial_log"],
        "api/ablation/index.html": ["LOCOSampler", "ablation_report"],
        "api/remote/index.html": ["StudyRun", "worker_spec", "run_worker"],
        "api/errors/index.html": ["SparkSetupError", "MessageTooLargeError"],
    }
    for page, names in pages.items():
        html = (tmp_path / page).read_text()
        for name in names:
            assert name in html, (page, name)
