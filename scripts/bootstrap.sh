#!/usr/bin/env bash
# Set up a fresh machine for optuna-spark: Java 17+ for Spark, a virtualenv in .venv, and the
# package with the extras named as arguments (default: none; "test" adds the test tools and
# TensorFlow for the Keras tests).
#   bash scripts/bootstrap.sh          # the package, to run the examples
#   bash scripts/bootstrap.sh test     # plus everything the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  echo "Installing Java 17 for Spark..." >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "Spark needs Java 17+: install it (e.g. apt-get install openjdk-17-jre-headless)." >&2
    exit 1
  fi
fi

# The tests start a private PostgreSQL server (never a system service: its binaries only),
# and partition a worker with network namespaces (iproute2's ip).
if [[ " $* " == *" test "* ]]; then
  missing=""
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing="$missing postgresql"
  fi
  command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
  if [ -n "$missing" ]; then
    echo "Installing$missing for the fault tests..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
      echo "The tests need:$missing (apt-get install$missing)." >&2
      exit 1
    fi
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="dashboard,examples,ablation,pbt"
for e in "$@"; do
  case "$e" in
    test) extras="$extras,test,tensorflow,torch,connect,docs" ;;
    *) extras="$extras,$e" ;;
  esac
done
case ",$extras," in
  *,torch,*)
    # PyTorch's CPU build: PyPI's default Linux wheel pulls several GB of CUDA libraries. Where
    # no CPU wheel of this release is on pip's find-links, set TORCH_INDEX_URL to PyTorch's CPU
    # index (https://download.pytorch.org/whl/cpu).
    .venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
    ;;
esac
# setuptools reports every editable install with a warning banner ("Editable installation.
# ... Please be careful with folders in your working directory ..."): information for
# packagers, not for a user setting up the project, so it is filtered out here alone.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e ".[$extras]"
