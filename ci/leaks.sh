#!/usr/bin/env bash
# Runs end-to-end test files with every redis-server under valgrind memcheck and reports the
# definite leaks, those with a frame in our module apart from those of CPython or Redis alone.
#   ci/leaks.sh                          the default subset below
#   ci/leaks.sh pyexecute registrations  these test files
# Slow (each server starts in ~10 s under valgrind) and not part of ci/test.sh. Tests that wait
# on timing may fail under valgrind; the leak report is what this is for.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(operations pyexecute triggers async_steps registrations stream_registrations hooks
        requirements persistence sessions)
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 2; }
out="${LEAKS_DIR:-$(mktemp -d /tmp/gears-leaks.XXXXXX)}"
mkdir -p "$out"
cargo build --release -p redisgears
cargo test -p e2e --release --no-run >/dev/null 2>&1
# Redis allocates with the system's libjemalloc: memcheck must intercept it to see anything.
export GEARS_E2E_WRAPPER="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --soname-synonyms=somalloc=libjemalloc.so* --num-callers=40 --log-file=$out/vg.%p.log"
for test in "${tests[@]}"; do
    if cargo test -p e2e --release --test "$test" -- --test-threads=2 >"$out/test-$test.txt" 2>&1; then
        echo "$test: passed under valgrind"
    else
        echo "$test: $(grep -cE '^test .* FAILED$' "$out/test-$test.txt") test(s) failed under valgrind (see $out/test-$test.txt)"
    fi
done
python3 ci/leak_report.py "$out"
