"""The written code rules, checked: Optuna's private names only in the adapter, small modules
and functions, and a wire schema that cannot change without its protocol version."""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import msgspec

import optuna_spark
from optuna_spark.wire import messages as m

PACKAGE = Path(optuna_spark.__file__).parent

#: Optuna's private attributes: read only by ``_optuna_adapter.py``, the one place that has to
#: change when Optuna's internals do.
OPTUNA_PRIVATE = {"_trial_id", "_study_id", "_storage", "_stop_flag", "_thread_local"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: Modules allowed more lines, and why.
MODULE_LINES = {
    # The composition root of a run: its parts (hand-out, leases, retries, recorder, trial
    # desk, stamps, state) live in modules of their own; what is left is where the two locks
    # meet (the hand-out of new, resumed and parked trials), kept in one place so that the
    # locking can be read in one place.
    "_coordinator/_run.py": 655,
    # SparkExecutor: its two public entry points, most of it their documented arguments.
    "_spark/_executor.py": 490,
    # The wire schema: every message in one module, whose hash pins the protocol version.
    "wire/messages.py": 460,
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_optunas_private_names_are_read_only_in_the_adapter() -> None:
    found = []
    for path in _modules():
        if path.name == "_optuna_adapter.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in OPTUNA_PRIVATE
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert found == [], "use optuna_spark._optuna_adapter instead:\n" + "\n".join(found)


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        assert first.end_lineno is not None
        return first.end_lineno - first.lineno + 1
    return 0


def test_modules_and_functions_stay_small() -> None:
    # A function's length is its code's: its docstring does not count.
    too_long = []
    for path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        if len(lines) > MODULE_LINES.get(path.relative_to(PACKAGE).as_posix(), MAX_MODULE_LINES):
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
            first = lines[node.lineno - 1]
            if length > MAX_FUNCTION_LINES and "# long:" not in first:
                too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}()")
    assert too_long == [], (
        f"split these (modules up to {MAX_MODULE_LINES} lines, functions up to "
        f"{MAX_FUNCTION_LINES} unless their def line says `# long: <why>`):\n"
        + "\n".join(too_long)
    )


#: The hash of the wire schema that ``PROTOCOL_VERSION`` describes. A change of any message
#: makes this test fail: bump ``PROTOCOL_VERSION`` (peers of different versions then refuse
#: each other in the handshake, rather than misread each other), then update both.
SCHEMA = (8, "5cec40f9684c0edd")


def _schema_hash() -> str:
    types = sorted(
        (obj for _, obj in inspect.getmembers(m, inspect.isclass) if obj.__module__ == m.__name__),
        key=lambda t: t.__name__,
    )
    structs = [t for t in types if issubclass(t, msgspec.Struct)]
    schema = _without_descriptions(msgspec.json.schema_components(structs))
    return hashlib.sha256(msgspec.json.encode(schema, order="sorted")).hexdigest()[:16]


def _without_descriptions(node: object) -> object:
    """The schema without the docstrings msgspec copies into it: wording is not wire."""
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, (list, tuple)):
        return [_without_descriptions(v) for v in node]
    return node


def test_the_wire_schema_is_pinned_to_its_protocol_version() -> None:
    assert (m.PROTOCOL_VERSION, _schema_hash()) == SCHEMA, (
        "The wire messages changed: bump PROTOCOL_VERSION and update SCHEMA in this test."
    )
