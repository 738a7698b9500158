#!/usr/bin/env bash
# Runs every benchmark in bench/ (each prints its figures and its same-run baseline) and the
# machine it ran on. Usage: bash bench/run_all.sh [--quick]
#   --quick   shorter runs with fewer levels (a smoke run; figures are noisier)
# Exit status: non-zero when any benchmark failed to run (figures are never asserted).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

quick=0
[ "${1:-}" = "--quick" ] && quick=1

echo "== machine"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "python:  $($PY -c 'import sys; print(sys.version.split()[0])')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on the machine skews figures)"

# bench name -> extra arguments for --quick
declare -A QUICK_ARGS=(
    [admission_bench]="--seconds 2 --max-rate 400"
    [concurrency_bench]="--levels 250,500"
    [bridge_bench]="--levels 20,50 --seconds 4"
    [engine_bench]="--rounds 1"
    [render_bench]="--orgs 200 --repeat 1"
    [quality_bench]="--languages en,es,de --sentences 3"
    [store_bench]="--cycles 500 --seconds 2 --repeat 1"
)

failed=()
for script in bench/*_bench.py; do
    name=$(basename "$script" .py)
    args=()
    if [ "$quick" = 1 ] && [ -n "${QUICK_ARGS[$name]:-}" ]; then
        read -r -a args <<<"${QUICK_ARGS[$name]}"
    fi
    echo
    echo "== $name ${args[*]:-}"
    start=$(date +%s)
    if ! "$PY" "$script" "${args[@]}"; then
        failed+=("$name")
        echo "!! $name failed"
    fi
    echo "-- $name took $(( $(date +%s) - start )) s"
done

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all benchmarks ran"
