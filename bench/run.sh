#!/usr/bin/env bash
# Runs every benchmark and prints one line per figure: `name  ours=…  floor=…  ratio=…`.
#   bench/run.sh           full run (7 repetitions a side, scaling at 100k / 1M / 3M keys)
#   bench/run.sh --quick   under 3 minutes on 2 cores (5 repetitions, one scaling pass)
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
export PYO3_PYTHON=/usr/bin/python3.11
cargo build --release -p redisgears -p gears-bench
target/release/reqs-install "$@"
target/release/stream-registrations "$@"
target/release/cluster-executions "$@"
exec target/release/gears-bench "$@"
