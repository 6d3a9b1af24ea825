#!/usr/bin/env bash
# Sets up what is missing, builds the module and starts redis-server with it in the foreground on
# 127.0.0.1 (port 6379, or PORT=... / --port N). Extra arguments go to the module, e.g.
#   ci/run-server.sh ExecutionThreads 5 PythonAttemptTraceback 0
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

port=${PORT:-6379}
if [ "${1:-}" = "--port" ]; then
  port=$2
  shift 2
fi

ci/setup.sh
export PYO3_PYTHON=/usr/bin/python3.11
cargo build --release -p redisgears

data="$repo/target/run-server"
mkdir -p "$data"
cat <<MSG

gears-rs: starting redis-server on 127.0.0.1:$port with target/release/libredisgears.so
Try, from another terminal:
  redis-cli -p $port SET user:1 alice
  redis-cli -p $port RG.PYEXECUTE "GB().map(lambda r: r['key']).run()"

MSG
exec redis-server --port "$port" --bind 127.0.0.1 --dir "$data" \
  --loadmodule "$repo/target/release/libredisgears.so" "$@"
