#!/usr/bin/env bash
# Every benchmark, one after the other, on this machine: the tables of benchmarks/README.md.
# Needs .venv (scripts/bootstrap.sh test) and benchmarks/.venv-peers (see README.md). Takes
# about 30 minutes on 2 cores; run nothing else meanwhile. Output: benchmarks/results/*.json
# and one log per script under benchmarks/results/logs/. PY and PEERS_PY name other
# interpreters (with PYTHONPATH, another checkout can be measured with this one's venvs).
set -euo pipefail
cd "$(dirname "$0")/.."
logs=benchmarks/results/logs
mkdir -p "$logs"
export PYTHONFAULTHANDLER=1  # a crash prints where it happened
failed=()
run() {
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$logs/$name.txt" | tail -25 || failed+=("$name")
}
py=${PY:-.venv/bin/python}
run dispatch "${PEERS_PY:-benchmarks/.venv-peers/bin/python}" benchmarks/dispatch.py
run rpc_overhead "$py" benchmarks/rpc_overhead.py --trials 2000 --repeats 3
run utilization "$py" benchmarks/utilization.py
run scale "$py" benchmarks/scale.py
run growth "$py" benchmarks/growth.py
run pruning "$py" benchmarks/pruning.py
run load-random "$py" benchmarks/load.py --label random-200
run load-tpe "$py" benchmarks/load.py --sampler tpe --workers 100 --preload 3000 \
  --sampling both --label tpe-100
run load-tpe-40 "$py" benchmarks/load.py --sampler tpe --workers 40 --trial-seconds 1 \
  --preload 3000 --sampling both --label tpe-40
run load-random-1000 "$py" benchmarks/load.py --workers 1000 --processes 8 --trial-seconds 5 \
  --label random-1000
run connections "$py" benchmarks/connections.py
run connect "$py" benchmarks/connect.py
run ablation "$py" benchmarks/ablation.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (see $logs)" >&2
  exit 1
fi
