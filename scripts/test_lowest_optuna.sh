#!/usr/bin/env bash
# Run the core tests (no Spark, no TensorFlow, no documentation build) against the lowest
# Optuna version that pyproject.toml allows, in a virtualenv of their own (.venv-lowest), so
# that the lower bound stays honest. CI runs it after the main suite.
#   bash scripts/test_lowest_optuna.sh
set -euo pipefail
cd "$(dirname "$0")/.."

lowest=$(python3 - <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
(spec,) = [d for d in deps if re.match(r"optuna\s*[<>=!~]", d)]
print(re.search(r">=\s*([\w.]+)", spec).group(1))
PY
)
echo "Core tests against the lowest allowed Optuna: optuna==$lowest" >&2
python3 -m venv .venv-lowest
.venv-lowest/bin/python -m pip install -q --upgrade pip
.venv-lowest/bin/python -m pip install -q -e ".[test,ablation]" "optuna==$lowest"
installed=$(.venv-lowest/bin/python -c "import optuna; print(optuna.__version__)")
if [ "$installed" != "$lowest" ] && [ "$installed" != "$lowest.0" ]; then
  echo "Expected optuna $lowest in .venv-lowest, found $installed." >&2
  exit 1
fi
.venv-lowest/bin/python -m pytest -p no:cacheprovider -m "not spark and not cluster and not tensorflow and not torch and not docs"
