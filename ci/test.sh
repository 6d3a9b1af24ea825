#!/usr/bin/env bash
# Sets up what is missing, builds, and runs every test: unit tests of the pure crates and the
# end-to-end tests against real redis-server processes with the built module.
set -euo pipefail
cd "$(dirname "$0")/.."

ci/setup.sh
export PYO3_PYTHON=/usr/bin/python3.11
export CARGO_TERM_COLOR=never

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== build the module and the gears-reqs tool"
cargo build --release -p redisgears
cargo build --release -p reqs-manager --bins

echo "== tests"
cargo test --workspace --release
