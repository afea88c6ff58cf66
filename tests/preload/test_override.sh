#!/usr/bin/env bash
# test_override.sh: libsoma-override.so as the malloc of real programs.
#   1. it exports every allocator entry point of the C library
#   2. ls, sort and sh pipelines print under soma exactly what they print
#      without it
#   3. the same with an empty environment (env -i: nothing but LD_PRELOAD)
#      and under GLIBC_TUNABLES=glibc.malloc.check=3 (with glibc's malloc
#      debugging library preloaded after soma, too)
#   4. Debian's python3 with PYTHONMALLOC=malloc (every object through
#      malloc) computes the right answer, and its exit dump shows that soma
#      served it
# usage: test_override.sh LIBSOMA_OVERRIDE
set -u
lib=$1
fail=0; pass=0
ok()  { pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }

want="malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc
pvalloc malloc_usable_size cfree __libc_malloc __libc_free __libc_calloc __libc_realloc
__libc_memalign __libc_valloc __libc_pvalloc __libc_cfree __posix_memalign mallinfo mallinfo2
malloc_stats malloc_info mallopt malloc_trim"
have=$(nm -D --defined-only "$lib" | awk '{print $3}')
for s in $want; do
    if grep -qx "$s" <<<"$have"; then ok; else bad "symbol $s is not exported"; fi
done

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
seq 1 20000 | awk '{print ($1 * 7919) % 10007 " line " $1}' > "$tmp/in"
run_both() { # a command line for sh -c; compares output and status
    local plain under rc1 rc2
    plain=$(sh -c "$1" 2>&1); rc1=$?
    under=$(LD_PRELOAD=$lib sh -c "$1" 2>&1); rc2=$?
    if [ "$plain" == "$under" ] && [ $rc1 == $rc2 ]; then ok; else bad "'$1' differs under soma (status $rc1 vs $rc2)"; fi
}
run_both "ls -la /usr/lib | sort -k9 | head -50"
run_both "sort -n $tmp/in | uniq -c | sort -rn | head -20"
run_both "cat $tmp/in | tr a-z A-Z | sort | md5sum"
run_both "for i in 1 2 3; do ls /usr/bin | wc -l; done"
run_both "sh -c 'echo nested | cat | cat'"

pipeline="sort -n $tmp/in | uniq -c | sort -rn | md5sum; ls -la /usr/lib | sort -k9 | head -50"
run_env() { # environment settings for env(1); compares with the same environment without soma
    local plain under rc1 rc2
    plain=$(env "$@" /bin/sh -c "$pipeline" 2>&1); rc1=$?
    under=$(env "$@" LD_PRELOAD="$lib${extra:-}" /bin/sh -c "$pipeline" 2>&1); rc2=$?
    if [ "$plain" == "$under" ] && [ $rc1 == 0 ] && [ $rc2 == 0 ]; then ok
    else bad "pipeline with env $* differs under soma (status $rc1 vs $rc2): $under"; fi
}
run_env -i
run_env GLIBC_TUNABLES=glibc.malloc.check=3
debug=/lib/x86_64-linux-gnu/libc_malloc_debug.so.0
if [ -e $debug ]; then extra=" $debug" run_env GLIBC_TUNABLES=glibc.malloc.check=3; fi

py=/usr/bin/python3
if [ -x $py ]; then
    script='
import json, threading
objs = [str(i) * (i % 5 + 1) for i in range(200000)]
d = {i: [i, str(i)] for i in range(50000)}
def work(n): return sum(len(json.dumps([k, v])) for k, v in list(d.items())[:n])
ts = [threading.Thread(target=work, args=(20000,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(map(len, objs)), len(json.dumps(d)))'
    expect=$($py -c "$script")
    got=$(LD_PRELOAD=$lib PYTHONMALLOC=malloc SOMA_SHOW_STATS=1 $py -c "$script" 2>"$tmp/dump")
    if [ "$got" == "$expect" ]; then ok; else bad "python3 printed '$got', expected '$expect'"; fi
    total=$(awk -F= '/^# arenas allocated total/ {gsub(/[ ,]/, "", $2); print $2}' "$tmp/dump")
    if [ "${total:-0}" -ge 5 ]; then ok; else bad "python3's dump shows ${total:-no} arenas: soma did not serve it"; fi
else
    echo "python3 not found: its check skipped"
fi
echo "test_override: $pass passed, $fail failed"
[ $fail -eq 0 ]
