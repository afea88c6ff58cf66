#!/usr/bin/env bash
# test_soma_run.sh: `soma run` and the report options (SOMA_STATS_FILE,
# SOMA_STATS_SIGNAL) on real programs.
#   1. soma run -- ls: ls's output untouched, its exit status kept, one dump
#      labelled with its pid and command, whose Total is arenas x arena size
#   2. a shell pipeline: a dump for each program the shell starts, labelled
#      ls, sort, head; the shell's own status (3) kept; --no-children: PROG's
#      report only, and a count of what was left out
#   3. a program that closes its stderr still gets its dump (own channel)
#   4. a program killed by a signal: reported as such, status 128 + signal
#   5. --output FILE: the dumps go there, nothing on stderr
#   6. python3 (PYTHONMALLOC=malloc set by soma run) builds a list: its dump
#      shows many arenas
#   7. SOMA_STATS_SIGNAL=USR2 with SOMA_STATS_FILE=DIR/%p: a running program
#      writes a dump on each signal, and one at exit
#   8. bad values of the options: one warning line each, the program runs
# usage: test_soma_run.sh SOMA_CLI LIBSOMA_OVERRIDE
set -u
soma=$1 lib=$2
fail=0; pass=0
ok()  { pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# 1
"$soma" run -- ls -1 /usr > "$tmp/out" 2> "$tmp/err"; rc=$?
check "[ $rc -eq 0 ]" "ls under soma run: status $rc"
check "diff -q <(ls -1 /usr) $tmp/out >/dev/null" "ls's output changed under soma run"
check "[ \$(grep -c '^# soma: pid [0-9]* (ls -1 /usr), at exit\$' $tmp/err) -eq 1 ]" "no labelled dump for ls: $(head -3 $tmp/err)"
arenas=$(awk -F= '/^# arenas allocated current/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
total=$(awk -F= '/^Total/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
size=$(sed -n 's/^[0-9]* arenas \* \([0-9]*\) bytes\/arena.*/\1/p' "$tmp/err" | head -1)
check "[ -n '$arenas' ] && [ -n '$size' ] && [ '$total' = \$(( ${arenas:-0} * ${size:-0} )) ]" "ls's dump: Total $total is not $arenas arenas of $size bytes"

# 2
"$soma" run -- sh -c 'ls / | sort | head -3 > /dev/null; exit 3' 2> "$tmp/err"; rc=$?
check "[ $rc -eq 3 ]" "pipeline: status $rc, expected 3"
for c in 'ls /' sort 'head -3'; do
    check "grep -q '^# soma: pid [0-9]* ($c), at exit\$' $tmp/err" "pipeline: no dump labelled '$c'"
done
check "[ \$(grep -c '^Small block threshold' $tmp/err) -ge 3 ]" "pipeline: fewer than 3 dumps"
"$soma" run --no-children -- sh -c 'ls / | sort > /dev/null' 2> "$tmp/err"
check "[ \$(grep -c '^Small block threshold' $tmp/err) -le 1 ]" "--no-children printed children's dumps"
check "grep -q '2 other processes of the run left out' $tmp/err" "--no-children: no count of what was left out: $(cat $tmp/err)"

# 3
"$soma" run -- sh -c 'exec 2>&-; ls / > /dev/null' 2> "$tmp/err"
check "grep -q '^# soma: pid [0-9]* (ls /), at exit\$' $tmp/err" "a program with its stderr closed lost its dump"

# 4
"$soma" run -- sh -c 'kill -SEGV $$' 2> "$tmp/err"; rc=$?
check "[ $rc -eq 139 ]" "killed program: status $rc, expected 139"
check "grep -q 'was killed by signal 11' $tmp/err" "killed program not reported: $(cat $tmp/err)"

# 5
"$soma" run --output "$tmp/report" -- ls / > /dev/null 2> "$tmp/err"
check "[ ! -s $tmp/err ] && grep -q '^Small block threshold' $tmp/report" "--output: report not in the file or stderr not empty"

# 6
if [ -x /usr/bin/python3 ]; then
    out=$("$soma" run -- python3 -c 'x = [str(i) for i in range(300000)]; print(len(x))' 2> "$tmp/err")
    check "[ '$out' = 300000 ]" "python3 under soma run printed '$out'"
    arenas=$(awk -F= '/^# arenas highwater mark/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
    check "[ ${arenas:-0} -ge 10 ]" "python3's dump shows ${arenas:-no} arenas at most: soma did not see its objects"
fi

# 7
SOMA_STATS_SIGNAL=USR2 SOMA_SHOW_STATS=1 SOMA_STATS_FILE="$tmp/sig.%p" LD_PRELOAD="$lib" sleep 2 &
pid=$!
sleep 0.5
kill -USR2 $pid; sleep 0.2; kill -USR2 $pid; sleep 0.2
n=$(grep -c "^# soma: pid $pid (sleep 2), on signal USR2\$" "$tmp/sig.$pid" 2>/dev/null)
check "[ '${n:-0}' = 2 ]" "SOMA_STATS_SIGNAL: ${n:-no} dumps after two signals"
wait $pid; rc=$?
check "[ $rc -eq 0 ]" "the signalled program ended with status $rc"
check "grep -q '^# soma: pid $pid (sleep 2), at exit\$' $tmp/sig.$pid" "no dump at exit after the signal dumps"

# 8
for kv in SOMA_STATS_SIGNAL=BOGUS SOMA_STATS_SIGNAL=KILL SOMA_STATS_SIGNAL=SEGV SOMA_STATS_FILE= SOMA_SHOW_STATS=maybe SOMA_ARENA_DECAY_MS=-5; do
    err=$(env "$kv" LD_PRELOAD="$lib" /bin/echo hi 2>&1 >/dev/null)
    check "[ \$(printf '%s\n' \"\$err\" | grep -c 'soma: warning: ${kv%%=*}=') -eq 1 ] && [ \$(printf '%s\n' \"\$err\" | wc -l) -eq 1 ]" "$kv: expected one warning line, got: $err"
done

echo "test_soma_run: $pass passed, $fail failed"
[ $fail -eq 0 ]
