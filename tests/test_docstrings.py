"""The ``.. testcode::`` examples of the package's docstrings (modules, classes and
functions) run."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Any

import pytest

import optuna_spark

PACKAGE = Path(optuna_spark.__file__).parent


def _examples() -> list[Any]:
    out: list[Any] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)):
                continue
            doc = ast.get_docstring(node) or ""
            name = "module" if isinstance(node, ast.Module) else node.name
            for i, block in enumerate(doc.split(".. testcode::")[1:]):
                lines = []
                for line in block.split("\n")[1:]:
                    if line.strip() and not line.startswith("    "):
                        break
                    lines.append(line)
                marks = [pytest.mark.tensorflow] if "import keras" in block else []
                if "import torch" in block:
                    marks.append(pytest.mark.torch)
                out.append(
                    pytest.param(
                        textwrap.dedent("\n".join(lines)),
                        id=f"{path.parent.name}.{path.stem}.{name}.{i}",
                        marks=marks,
                    )
                )
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", _examples())
def test_example_runs(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "<docstring>", "exec"), {})
