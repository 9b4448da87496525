#!/bin/sh
# Runs every fuzz target in turn for longer than ctest does (the fuzz_long
# build target calls this). Usage:
#   run_long.sh DEFAULT_SECONDS WORK_DIR FUZZ_SOURCE_DIR TARGET_BINARY...
# GMUD_FUZZ_LONG_SECONDS in the environment overrides DEFAULT_SECONDS.
# Seeds come from FUZZ_SOURCE_DIR/corpus/<target> (only read), with
# FUZZ_SOURCE_DIR/dict/<target>.dict if there is one. New inputs go to
# WORK_DIR/<target>, crashes to WORK_DIR/artifacts. Exits non-zero if any
# target found a problem.
set -u
seconds=${GMUD_FUZZ_LONG_SECONDS:-$1}
work=$2
src=$3
shift 3
status=0
failed=
for bin in "$@"; do
    name=$(basename "$bin")
    mkdir -p "$work/$name" "$work/artifacts"
    dict=
    if [ -f "$src/dict/$name.dict" ]; then
        dict="-dict=$src/dict/$name.dict"
    fi
    echo "== $name: ${seconds}s"
    # $dict unquoted on purpose: empty means no argument at all.
    if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
            -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" $dict \
            "$work/$name" "$src/corpus/$name"; then
        status=1
        failed="$failed $name"
    fi
done
if [ "$status" -ne 0 ]; then
    echo "fuzz_long: problems found by:$failed (inputs in $work/artifacts)" >&2
else
    echo "fuzz_long: every target ran ${seconds}s without finding a problem"
fi
exit "$status"
