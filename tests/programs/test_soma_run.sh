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
#   9. pools emptied in arenas that stay (python3 drops a list but every
#      5000th string, SOMA_ARENA_DECAY_MS=50): the dump's "Returned pools"
#      section counts their pages; the timeline marks each purge, the
#      markers' pools add up to the samples' rise and to the summary's
#      count, and draws the arenas' bytes less the pages returned
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
# Waits on its condition, not on a guess of how long things take: the
# program runs until told (cat of a FIFO returns when the FIFO is opened
# for writing and closed), is signalled once its handler is installed
# (SigCgt has USR2, signal 12: bit 11), and each dump is waited for (up to
# 10 s each, on a loaded machine).
wait_for() { # tenths of a second, condition
    local n=$1
    while [ "$n" -gt 0 ]; do eval "$2" && return 0; sleep 0.1; n=$((n - 1)); done
    return 1
}
mkfifo "$tmp/go"
SOMA_STATS_SIGNAL=USR2 SOMA_SHOW_STATS=1 SOMA_STATS_FILE="$tmp/sig.%p" LD_PRELOAD="$lib" cat "$tmp/go" > /dev/null &
pid=$!
caught() { local m; m=$(awk '/^SigCgt:/ {print $2}' /proc/$pid/status 2>/dev/null); [ $(( 0x${m:-0} & 0x800 )) -ne 0 ]; }
dumps() { grep -c "^# soma: pid $pid (cat $tmp/go), on signal USR2\$" "$tmp/sig.$pid" 2>/dev/null; }
check "wait_for 100 caught" "SOMA_STATS_SIGNAL: no USR2 handler installed"
alive() { kill -0 $pid 2>/dev/null; }
kill -USR2 $pid; wait_for 100 '[ "$(dumps)" = 1 ] || ! alive'
kill -USR2 $pid; wait_for 100 '[ "$(dumps)" = 2 ] || ! alive'
n=$(dumps)
check "[ '${n:-0}' = 2 ]" "SOMA_STATS_SIGNAL: ${n:-no} dumps after two signals"
# (not if it died: nothing would open the FIFO's other end)
alive && timeout 10 sh -c ': > "$1"' sh "$tmp/go"
# (and a program that does not end then is killed: a diagnosis, not CTest's
# timeout)
wait_for 100 '! alive' || kill -9 $pid
wait $pid; rc=$?
check "[ $rc -eq 0 ]" "the signalled program ended with status $rc"
check "grep -q '^# soma: pid $pid (cat $tmp/go), at exit\$' $tmp/sig.$pid" "no dump at exit after the signal dumps"

# 8
for kv in SOMA_STATS_SIGNAL=BOGUS SOMA_STATS_SIGNAL=KILL SOMA_STATS_SIGNAL=SEGV SOMA_STATS_FILE= SOMA_SHOW_STATS=maybe SOMA_ARENA_DECAY_MS=-5; do
    err=$(env "$kv" LD_PRELOAD="$lib" /bin/echo hi 2>&1 >/dev/null)
    check "[ \$(printf '%s\n' \"\$err\" | grep -c 'soma: warning: ${kv%%=*}=') -eq 1 ] && [ \$(printf '%s\n' \"\$err\" | wc -l) -eq 1 ]" "$kv: expected one warning line, got: $err"
done

# 9
if [ -x /usr/bin/python3 ]; then
    drop='import time
x = [str(i) * 4 for i in range(300000)]
keep = x[::5000]
del x
time.sleep(0.4)'
    SOMA_ARENA_DECAY_MS=50 "$soma" run --no-children -- /usr/bin/python3 -c "$drop" 2> "$tmp/err"
    now=$(awk -F= '/^# unused pools with pages returned/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
    ever=$(awk -F= '/^# pools returned total/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
    bytes=$(awk -F= '/^# bytes of pages returned/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/err")
    pool=$(sed -n 's/^[0-9]* unused pools \* \([0-9]*\) bytes.*/\1/p' "$tmp/err" | head -1)
    check "grep -q \"^Returned pools (soma's own: unused pools above whose pages went back to the OS).\\\$\" $tmp/err" "no Returned pools section: $(tail -5 $tmp/err)"
    check "[ \"\${now:-0}\" -ge 100 ] && [ \"\${ever:-0}\" -ge \"\${now:-0}\" ] && [ \"\${bytes:-0}\" = \$(( \${now:-0} * \${pool:-0} )) ]" "returned pools at exit: ${now:-none} now, ${ever:-none} ever, ${bytes:-no} bytes of ${pool:-?}"
    SOMA_ARENA_DECAY_MS=50 "$soma" run --no-children --interval 10 --timeline "$tmp/t.html" \
        --format json --output "$tmp/t.json" -- /usr/bin/python3 -c "$drop" 2> "$tmp/err"
    check "[ \$(grep -c 'class=\"purge\"' $tmp/t.html) -ge 1 ] && [ \$(grep -c 'class=\"arena-resident-bytes\"' $tmp/t.html) -eq 1 ]" "the timeline has no purge marker or no resident line: $(cat $tmp/err)"
    why=$(/usr/bin/python3 - "$tmp/t.json" "$tmp/t.html" <<'PY'
import json, re, sys
text, dec, i, snaps = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while text[i:].strip():
    while text[i].isspace():
        i += 1
    v, i = dec.raw_decode(text, i)
    snaps.append(v)
page = open(sys.argv[2]).read()
ks = [int(k.replace(",", "")) for k in
      re.findall(r'<g class="purge"><title>the pages of ([\d,]+) empty pools? \(', page)]
rise = snaps[-1]["returned"]["pools_total"] - snaps[0]["returned"]["pools_total"]
summary = re.search(r"the pages of ([\d,]+) empty pools? \([^)]*\) returned in all", page)
if not ks or sum(ks) != rise:
    print("the markers count %r pools, the samples rose by %d" % (ks, rise))
elif not summary or int(summary.group(1).replace(",", "")) != snaps[-1]["returned"]["pools_total"]:
    print("the summary says %r, the last snapshot %d" % (summary and summary.group(0),
                                                         snaps[-1]["returned"]["pools_total"]))
PY
)
    check "[ -z \"\$why\" ]" "timeline purges: $why"
fi

echo "test_soma_run: $pass passed, $fail failed"
[ $fail -eq 0 ]
