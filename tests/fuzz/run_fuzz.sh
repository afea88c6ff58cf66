#!/usr/bin/env bash
# run_fuzz.sh BUILD SECONDS: run BUILD/fuzz_soma (make fuzz builds it) for
# SECONDS seconds over BUILD/corpus, a copy of tests/fuzz/corpus: what the
# fuzzer finds goes there, not into the tree.  Half the time with soma's
# defaults, half with SOMA_ARENA_DECAY_MS=20, under which emptied pools are
# parked and empty arenas kept for a while (src/pool/pool.c, src/pool/arena.c): the
# option is read once per process, so each half is a run of its own.
# A failed check, a crash, a timeout (10 s per input) or more than 2 GB of
# memory stops it: the input is saved under BUILD/artifacts/, the end of
# the fuzzer's log is printed, and the exit status is 1.  Otherwise one line
# per half sums it up.  The logs are BUILD/fuzz.log and BUILD/fuzz-decay.log.
set -uo pipefail
build=${1:?usage: run_fuzz.sh BUILD SECONDS}
secs=${2:?usage: run_fuzz.sh BUILD SECONDS}
src=$(cd "$(dirname "$0")" && pwd)/corpus
mkdir -p "$build/corpus" "$build/artifacts"
cp "$src"/* "$build/corpus/"

# run LOG SECONDS [VAR=VALUE]: one libFuzzer run over BUILD/corpus.
run() {
    local log=$1 t=$2 rc cov
    shift 2
    echo "fuzz: $build/fuzz_soma ${*:-(defaults)}, $t s over $build/corpus" \
         "($(ls "$build/corpus" | wc -l) inputs), log in $log"
    env "$@" "$build/fuzz_soma" -max_total_time="$t" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/" "$build/corpus" >"$log" 2>&1
    rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz: the first error: $(grep -m1 -E 'CHECK FAILED|soma: fatal|ERROR: [A-Za-z]*Sanitizer|runtime error|ERROR: libFuzzer' "$log")"
        echo "fuzz: FAILED (exit $rc) after $(stat number_of_executed_units) runs; the input:" \
             "$(grep -o 'Test unit written to .*' "$log" | tail -1 | sed 's/Test unit written to //')"
        exit 1
    fi
    echo "fuzz: $(stat number_of_executed_units) runs in $t s, $(stat average_exec_per_sec) exec/s," \
         "$cov, $(stat new_units_added) new inputs, peak RSS $(stat peak_rss_mb) MB: no failure"
}

half=$((secs / 2))
run "$build/fuzz.log" $((secs - half))
if [ "$half" -gt 0 ]; then
    run "$build/fuzz-decay.log" "$half" SOMA_ARENA_DECAY_MS=20
fi
