#!/usr/bin/env bash
# Runs the fuzz targets with the committed corpora (new inputs are added to them).
#   fuzz/run.sh                 every target, 600 s each, two at a time
#   fuzz/run.sh 60 requirement  one target for 60 s
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz`).
# A crash leaves its input under fuzz/artifacts/<target>/ and the run fails; inputs that once
# crashed are kept in seeds/<target>/regression-*, so every run starts with them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build --release "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build --release
run() {
    local target="$1"
    mkdir -p "corpus/$target" "seeds/$target"
    if ! cargo +nightly fuzz run --release "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        >"logs-$target.txt" 2>&1; then
        echo "$target: CRASH, input in fuzz/artifacts/$target/, log in fuzz/logs-$target.txt"
        return 1
    fi
    echo "$target: $(grep -E 'stat::number_of_executed_units' "logs-$target.txt" | awk '{print $2}') runs, $(ls "corpus/$target" | wc -l) corpus inputs"
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for target in "${targets[@]:i:2}"; do
        run "$target" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
done
exit $status
