#!/usr/bin/env bash
# test_real_programs.sh: programs nobody on the team wrote, each run with
# `soma run` (soma preloaded as their malloc), each checked twice: its own
# output must be right, and its statistics (soma run's report) must show
# that soma served it (the report of the program's process, with at least
# one arena).
#   python3   an object-heavy script (PYTHONMALLOC=malloc: every object
#             through soma), and CPython's own test modules test_dict,
#             test_list, test_set, test_unicode, test_json, test_threading
#             (Debian's libpython3.11-testsuite)
#   sqlite3   a scripted workload: 200,000 rows, an index, aggregates,
#             updates and deletes, with results computed independently
#   redis     redis-server on 127.0.0.1 driven by redis-benchmark (a bounded
#             number of requests), then SET/GET/DBSIZE checks and a clean
#             shutdown (so that its exit dump is written)
#   git       a repository of 300 files and 20 commits, read back: log,
#             fsck, a checkout of the first commit, gc
#   gcc       compiles (cc1, as, collect2, ld: each reported) and runs a
#             C program
# Missing Debian packages are installed when running as root with apt-get;
# otherwise that program is skipped (and said so).  Exit 77 = all skipped.
#
# A mode runs them all with soma's options set (tests/programs/CMakeLists.txt
# lists the modes: debug mode, guard pages and checked copies...): the
# programs must work the same, and soma must say nothing on stderr but its
# warnings, so that a mode raises no false alarm on real programs.  An
# option this soma does not know is ignored (an unknown value is warned
# about and its default used): a mode added before its option is harmless.
# usage: test_real_programs.sh SOMA_CLI [MODE [NAME=VALUE...]]
set -u
soma=$1
mode=${2:-plain}
shift $(( $# < 2 ? $# : 2 ))
for setting in "$@"; do export "${setting?}"; done
echo "mode $mode: ${*:-no options}"
fail=0; pass=0; skipped=0
ok()  { pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
# redis_pid runs `watched`: its soma run, redis-server and watchdog go with it
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${redis_pid:-}" ] && kill $(descendants $redis_pid) $redis_pid 2>/dev/null' EXIT

# need CMD PACKAGE...: 0 if CMD is there (installing the packages if we can)
need() {
    local cmd=$1; shift
    [ -e "$cmd" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $*"
        # the modes run in parallel: a second apt waits for the lock
        (export DEBIAN_FRONTEND=noninteractive; lock="-o DPkg::Lock::Timeout=600"
         apt-get $lock update -q && apt-get $lock install -y -q "$@") \
            > "$tmp/apt.log" 2>&1 3>&- || tail -5 "$tmp/apt.log"
    fi
    [ -e "$cmd" ] && return 0
    echo "SKIPPED: $cmd not available ($*)"; skipped=$((skipped + 1)); return 1
}

# A program that hangs must fail this test with a diagnosis, not leave it
# to ctest's timeout with nothing said: each `soma run` below is watched
# for LIMIT seconds (SOMA_TEST_PROGRAM_LIMIT, 400 by default: the slowest,
# python3 -m test in guard mode, takes about 100); past it, every process
# under this script is shown (state, kernel wait, threads' stacks through
# gdb when it can be had) and killed, and the check of that program fails.
limit=${SOMA_TEST_PROGRAM_LIMIT:-400}
descendants() { # PID [SKIP]: every process under PID, but SKIP and those under it
    local c
    for c in $(pgrep -P "$1"); do
        [ "$c" = "${2:-}" ] && continue
        echo "$c"; descendants "$c" "${2:-}"
    done
}
show_hang() { # WATCHDOG: shows and kills everything under this script but it
    local p pids=
    for p in $(descendants $$ "$1"); do [ -d "/proc/$p" ] && pids="$pids $p"; done
    echo "HANG: a program of mode $mode still runs after ${limit}s:"
    [ -n "$pids" ] || { echo "  (nothing left running)"; return; }
    ps -o pid,ppid,stat,etime,wchan:24,args -p "$(echo $pids | tr ' ' ',')" | cut -c1-200
    command -v gdb >/dev/null || need /usr/bin/gdb gdb >/dev/null
    for p in $pids; do
        case "$(cat /proc/$p/comm 2>/dev/null)" in ''|bash|sh|dash|sleep|tee|tr) continue ;; esac
        echo "--- pid $p: $(tr '\0\n' '  ' < /proc/$p/cmdline | cut -c1-160)"
        # what the kernel says of each thread (where gdb cannot attach,
        # all there is), then its stack
        for t in /proc/$p/task/*; do
            echo "  thread ${t##*/} ($(cat $t/comm 2>/dev/null)): waits in $(cat $t/wchan 2>/dev/null)," \
                 "system call $(cut -d' ' -f1 $t/syscall 2>/dev/null)"
        done
        command -v gdb >/dev/null &&
            timeout 60 gdb -p "$p" -batch -nx -ex 'thread apply all bt 30' 2>&1 |
                grep -e '^Thread' -e '^#' -e 'ptrace' -e 'attach' | head -150
    done
    kill -9 $pids 2>/dev/null
}
exec 3>&1 # the test's own output, also from inside $(...); no program inherits it
watched() { # CMD...: runs CMD, watched for $limit seconds
    # the sleep holds none of the test's pipes: should it outlive its
    # watchdog (killed before it could be), it keeps nothing waiting
    ( sleep "$limit" >/dev/null 2>&1 3>&- & wait $! && show_hang $BASHPID ) >&3 2>&1 &
    local watchdog=$! rc
    "$@" 3>&-; rc=$?
    # the sleep, or the watchdog itself if it has not started it yet
    pkill -P $watchdog -x sleep 2>/dev/null; kill $watchdog 2>/dev/null
    wait $watchdog 2>/dev/null
    return $rc
}

# served REPORT 'COMMAND REGEX': the report has a dump for a process whose
# command line matches, and that dump counts at least one arena
served() {
    awk -v re="$2" '
        /^# soma: pid [0-9]+ \(/ { inside = ($0 ~ "\\(" re); next }
        inside && /^# arenas allocated total/ { gsub(/[^0-9]/, "", $0); if ($0 + 0 >= 1) found = 1 }
        END { exit !found }' "$1"
}

py=/usr/bin/python3
if need $py python3; then
    script='
import json, collections
class Node:
    __slots__ = ("key", "kids")
    def __init__(self, key): self.key, self.kids = key, []
nodes = [Node(i) for i in range(200000)]
for i in range(1, len(nodes)): nodes[(i - 1) // 3].kids.append(nodes[i])
def depth(n): return 1 + max((depth(k) for k in n.kids), default=0)
words = collections.Counter(str(i % 997) * (i % 7 + 1) for i in range(300000))
table = {i: [str(i), i * 2.5, (i, -i)] for i in range(100000)}
blob = json.dumps(table); back = json.loads(blob)
del nodes[100000:]
print(depth(nodes[0]), len(words), len(blob), sum(v[1] for v in back.values()))'
    want=$($py -c "$script")
    got=$(watched "$soma" run --output "$tmp/py.report" -- $py -c "$script" 2>"$tmp/py.err"); rc=$?
    check "[ $rc -eq 0 ] && [ '$got' = '$want' ]" "python3 script: status $rc, printed '$got', expected '$want'"
    check "served $tmp/py.report '[^ ]*python3'" "python3's report shows no arena: $(head -3 $tmp/py.report)"
    arenas=$(awk -F= '/^# arenas highwater mark/ {gsub(/[ ,]/, "", $2); print $2; exit}' "$tmp/py.report")
    check "[ ${arenas:-0} -ge 20 ]" "python3's object-heavy run reached only ${arenas:-0} arenas"

    if need /usr/lib/python3.11/test/test_dict.py libpython3.11-testsuite; then
        out=$(watched "$soma" run --output "$tmp/pytest.report" -- $py -m test test_dict test_list \
              test_set test_unicode test_json test_threading 2>&1)
        rc=$?
        printf '%s\n' "$out" > "$tmp/pytest.err"
        check "[ $rc -eq 0 ] && printf '%s' \"\$out\" | grep -q 'Tests result: SUCCESS'" \
              "python3 -m test failed under soma (status $rc): $(printf '%s' "$out" | tail -8)"
        check "served $tmp/pytest.report '[^ ]*python3 -m test'" "python3 -m test: no report of soma serving it"
    fi
fi

if need /usr/bin/sqlite3 sqlite3; then
    sql="
create table t(id integer primary key, g integer, name text, v real);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 200000)
insert into t select i, i % 100, 'name-' || i, i * 0.5 from n;
create index tg on t(g);
select count(*), sum(id), count(distinct g), max(length(name)) from t;
update t set v = v * 2 where g < 50;
delete from t where g = 99;
select count(*), sum(v) from t;
select g, count(*) from t group by g order by g limit 2;"
    got=$(printf '%s\n' "$sql" | watched "$soma" run --output "$tmp/sq.report" -- sqlite3 "$tmp/db.sqlite" \
          2>"$tmp/sq.err"); rc=$?
    check "[ $rc -eq 0 ]" "sqlite3 ended with status $rc"
    # 1..200000: sum 20000100000; names up to "name-200000" (11 bytes).  After the
    # update and delete: 198000 rows; sum(v) = sum(i*0.5) + sum over g<50 of i*0.5,
    # minus the deleted rows (g = 99), computed here by awk.
    want=$(awk 'BEGIN { for (i = 1; i <= 200000; i++) { g = i % 100; v = i * 0.5; if (g < 50) v *= 2;
                         if (g != 99) { n++; s += v } }
                         printf "200000|20000100000|100|11\n%d|%.1f\n0|2000\n1|2000\n", n, s }')
    check "[ \"\$got\" = \"\$want\" ]" "sqlite3 printed:
$got
expected:
$want"
    check "served $tmp/sq.report sqlite3" "sqlite3: no report of soma serving it"
fi

if need /usr/bin/redis-server redis-server && need /usr/bin/redis-benchmark redis-tools; then
    port=$((20000 + $$ % 20000))
    watched "$soma" run --output "$tmp/redis.report" -- redis-server --port $port --bind 127.0.0.1 \
        --save "" --appendonly no --daemonize no > "$tmp/redis.log" 2>&1 &
    redis_pid=$!
    # up to 60 s for its first PONG (a guarded or debug build on a loaded
    # machine starts slowly), less if it ends first
    for _ in $(seq 600); do
        redis-cli -p $port ping >/dev/null 2>&1 && break
        kill -0 $redis_pid 2>/dev/null || break
        sleep 0.1
    done
    bench=$(redis-benchmark -h 127.0.0.1 -p $port -n 20000 -P 8 -q -t set,get,incr,lpush,lpop 2>&1 | tr '\r' '\n' | grep -c 'requests per second')
    check "[ $bench -eq 5 ]" "redis-benchmark finished $bench of 5 tests"
    check "[ \"\$(redis-cli -p $port set soma:test 'hello soma')\" = OK ]" "redis SET failed"
    check "[ \"\$(redis-cli -p $port get soma:test)\" = 'hello soma' ]" "redis GET returned something else"
    check "[ \"\$(redis-cli -p $port incrby soma:n 41)\" = 41 ] && [ \"\$(redis-cli -p $port incr soma:n)\" = 42 ]" "redis INCR wrong"
    check "[ \"\$(redis-cli -p $port dbsize)\" -ge 2 ]" "redis DBSIZE too small"
    redis-cli -p $port shutdown nosave >/dev/null 2>&1
    wait $redis_pid; rc=$?; redis_pid=
    check "[ $rc -eq 0 ]" "redis-server ended with status $rc"
    check "served $tmp/redis.report redis-server" "redis-server: no report of soma serving it: $(head -3 $tmp/redis.report)"
fi

if need /usr/bin/git git; then
    repo="$tmp/repo"
    cat > "$tmp/git.sh" <<GIT
set -e
git init -q "$repo"; cd "$repo"
git config user.email t@example.com; git config user.name soma
for c in \$(seq 1 20); do
    for f in \$(seq 1 15); do echo "commit \$c file \$f \$(seq \$c \$((c + f)))" > "f\$(( (c - 1) * 15 + f )).txt"; done
    git add -A; git commit -q -m "commit \$c"
done
git log --oneline | wc -l
ls | wc -l
git fsck --no-progress 2>&1 | wc -l
git checkout -q HEAD~19; ls | wc -l; git checkout -q -
git gc -q; git count-objects -v | grep -c '^in-pack: [1-9]'
GIT
    got=$(watched "$soma" run --output "$tmp/git.report" -- sh "$tmp/git.sh" 2>&1 | tee "$tmp/git.err" | tr '\n' ' ')
    check "[ \"\$got\" = '20 300 0 15 1 ' ]" "git sequence printed '$got', expected '20 300 0 15 1 '"
    check "served $tmp/git.report 'git (commit|add|log)'" "git: no report of soma serving it"
fi

if need /usr/bin/gcc gcc; then
    cat > "$tmp/hello.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(void) { long s = 0; for (long i = 1; i <= 1000; i++) s += i * i; printf("%ld\n", s); return 0; }
C
    watched "$soma" run --output "$tmp/gcc.report" -- gcc -O2 -o "$tmp/hello" "$tmp/hello.c" 2>"$tmp/gcc.err"; rc=$?
    check "[ $rc -eq 0 ] && [ \"\$($tmp/hello)\" = 333833500 ]" "gcc under soma: status $rc, or a wrong program"
    check "served $tmp/gcc.report '[^ ]*cc1 '" "gcc: cc1 has no report of soma serving it"
    check "served $tmp/gcc.report 'gcc '" "gcc: the driver has no report"
fi

# No diagnosis from soma in any program's stderr (redis's went to its log).
said=$(cat "$tmp"/*.err "$tmp/redis.log" 2>/dev/null | grep '^soma: ' | grep -v '^soma: warning: ')
check "[ -z \"\$said\" ]" "soma said, in mode $mode:
$(printf '%s\n' "$said" | head -20)"
warned=$(cat "$tmp"/*.err "$tmp/redis.log" 2>/dev/null | grep '^soma: warning: ' | sort -u)
[ -z "$warned" ] || printf '%s\n' "$warned"

echo "test_real_programs ($mode): $pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ] || exit 1
[ $pass -gt 0 ] || exit 77
