"""test_guard.py: guarded blocks (src/malloc/guard.c) fault where the mistake
happens, and soma's handler says what happened.

Usage: test_guard.py GUARD_MISUSE OVERRIDE_SO SOMA_CLI DEBUG_MISUSE [SANITIZE]

Each case of tests/debug/guard_misuse.c commits one mistake in a fresh
process with the override preloaded, under SOMA_GUARD_SAMPLE=1 (every
allocation guarded), SOMA_DEBUG=guard and `soma run --debug=guard`.  The
test checks the signal that ended it (SIGSEGV for a fault, SIGABRT for what
a free finds), and the diagnosis: the kind of mistake, the faulting
address's offset from the block, the block's address and size as the
program printed them, a serial, the API, and the call stacks naming the
program's make_block (and drop_block, once freed).  debug_misuse (the
library, soma_* calls) under SOMA_DEBUG=guard: soma_debug_check finds a
guarded block's damaged slack, and its clean cases stay clean.  Then: about one
allocation in N is guarded with SOMA_GUARD_SAMPLE=N, and clean programs
(guard_misuse clean, python3) raise no false alarm.

Sanitizer builds skip it: AddressSanitizer owns SIGSEGV (and its own
preloading rules), and ThreadSanitizer's runtime cannot be preloaded
under.
"""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import check, done  # noqa: E402

prog, override, cli, misuse = sys.argv[1:5]
sanitized = len(sys.argv) > 5 and sys.argv[5] != ""
if sanitized:
    print("test_guard: skipped in a sanitizer build (the sanitizer owns SIGSEGV, and the "
          "override cannot be preloaded under it)")
    done("test_guard")
    sys.exit(0)

override = os.path.abspath(override)
SEGV = (-signal.SIGSEGV, 128 + signal.SIGSEGV)
ABRT = (-signal.SIGABRT, 128 + signal.SIGABRT)


def run(cmd, env_extra, timeout=120):
    env = dict(os.environ, **env_extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def stack_after(err, title):
    """The frames listed under `title` ("made at:" or "freed at:")."""
    m = re.search(r"\n  " + re.escape(title) + r"\n((?:    #\d+ .*\n)+)", err)
    return m.group(1) if m else ""


def expect(name, cmd, env, status, prefix, says, offset=None, freed=False, api="malloc",
           more=(), caller="main"):
    p = run(cmd, env)
    err = p.stderr
    ok = check(p.returncode in status, f"{name}: ended by the expected signal (status {p.returncode})")
    m = re.search(r"block (0x[0-9a-f]+) size (\d+)", err)
    ok &= check(m is not None, f"{name}: the program said which block")
    if not ok:
        print(err)
        return
    addr, size = m.group(1), m.group(2)
    diag = err[m.end():]
    ok &= check("not caught" not in p.stdout, f"{name}: stopped before it went on")
    ok &= check(re.search(prefix + says, diag) is not None,
                f"{name}: /{prefix}{says}/")
    ok &= check(re.search(rf"\n  block {addr}: {size} bytes asked, serial [1-9]\d*, made by "
                          + re.escape(api) + r", a guarded block; "
                          + ("freed" if freed else "live"), diag) is not None,
                f"{name}: names block {addr}, its {size} bytes, a serial, {api}")
    if offset is not None:
        ok &= check(f"the address is U{offset} (U = {addr}; the block's {size} bytes end at "
                    f"U+{size})" in diag, f"{name}: the address is U{offset}")
    made = stack_after(diag, "made at:")
    ok &= check(re.search(r"#0 0x[0-9a-f]+ make_block\+0x[0-9a-f]+ \(", made) is not None,
                f"{name}: the stack that made it starts in make_block")
    if caller is not None:
        ok &= check(re.search(rf" {caller}\+", made) is not None, f"{name}: ... called by {caller}")
    if freed:
        fr = stack_after(diag, "freed at:")
        ok &= check(re.search(r"#0 0x[0-9a-f]+ drop_block\+", fr) is not None,
                    f"{name}: the stack that freed it starts in drop_block")
    for pat in more:
        ok &= check(re.search(pat, diag) is not None, f"{name}: /{pat}/")
    if not ok:
        print(err)


def cases(mode, env, prefix):
    fault = prefix + r"a (write to|read of) 0x[0-9a-f]+ faulted: "
    for n in (8, 4096, 262144):
        r = (n + 15) // 16 * 16
        expect(f"{mode} overflow {n}", [prog, "overflow", str(n)], env, SEGV, fault,
               rf"buffer overflow: the {r - n + 1}(st|nd|rd|th) byte past the end of a guarded "
               "block", offset=f"+{r}",
               more=[r"a write to", prefix + r"the program stops with SIGSEGV"])
        expect(f"{mode} use after free (read) {n}", [prog, "uaf-read", str(n)], env, SEGV,
               fault, r"use after free: the block was freed", offset=f"+{n // 2}", freed=True,
               more=[r"a read of"])
        expect(f"{mode} use after free (write) {n}", [prog, "uaf-write", str(n)], env, SEGV,
               fault, r"use after free: the block was freed", offset=f"+{n // 2}", freed=True,
               more=[r"a write to"])
        expect(f"{mode} double free {n}", [prog, "double-free", str(n)], env, ABRT,
               prefix + r"free\(0x[0-9a-f]+\): ", "double free: the block is free already",
               freed=True)
    for n in (4096, 262144):  # the block starts its page: the page before is the guard
        expect(f"{mode} underflow {n}", [prog, "underflow", str(n)], env, SEGV, fault,
               r"buffer underflow: the 1st byte before a guarded block", offset="-1")
    for n in (8, 100):  # inside the rounding, or before the block on its page: at free
        expect(f"{mode} slack overflow {n}", [prog, "slack", str(n)], env, ABRT,
               prefix + r"free\(0x[0-9a-f]+\): ",
               "buffer overflow: the bytes after the block, before its guard page, were "
               "overwritten",
               more=[rf"1 byte changed, at U\+{n} ", rf"at U\+{n} found:\s+53 fd"])
        expect(f"{mode} slack underflow {n}", [prog, "slack-before", str(n)], env, ABRT,
               prefix + r"free\(0x[0-9a-f]+\): ",
               "buffer underflow: the bytes before the block, on its page, were overwritten",
               more=[r"1 byte changed, at U-1 ", r"at U-1 found:\s+42\n"])
    p = run([prog, "clean"], env)
    check(p.returncode == 0 and p.stdout.strip() == "clean" and prefix not in p.stderr
          .replace(prefix + "as many guarded", ""),
          f"{mode} clean: every call on guarded blocks, no false alarm ({p.returncode}) "
          f"{p.stderr[-2000:]}")


PRE = {"LD_PRELOAD": override}
cases("sampled", dict(PRE, SOMA_GUARD_SAMPLE="1"), "soma: guard: ")
cases("debug=guard", dict(PRE, SOMA_DEBUG="guard"), "soma: debug: ")

# soma run --debug=guard sets SOMA_DEBUG=guard.
expect("soma run --debug=guard", [cli, "run", "--debug=guard", "--no-children", "--", prog,
                                  "uaf-write", "4096"], {}, SEGV,
       r"soma: debug: a write to 0x[0-9a-f]+ faulted: ", "use after free", offset="+2048",
       freed=True)

# The library under SOMA_DEBUG=guard: soma_debug_check checks every live
# guarded block's slack (200 bytes asked, U+203 written: in the rounding).
p = run([misuse, "check"], {"SOMA_DEBUG": "guard"})
check(p.returncode in ABRT and re.search(
    r"soma: debug: soma_debug_check found block (0x[0-9a-f]+): buffer overflow: the bytes after "
    r"the block, before its guard page, were overwritten\n  block \1: 200 bytes asked, serial "
    r"[1-9]\d*, made by soma_malloc, a guarded block; live\n  1 byte changed, at U\+203 ",
    p.stderr) is not None,
      f"SOMA_DEBUG=guard: soma_debug_check finds a guarded block's slack changed ({p.returncode}) "
      f"{p.stderr[-1500:]}")
for case in ("clean", "threads", "fork", "early"):
    p = run([misuse, case], {"SOMA_DEBUG": "guard"})
    check(p.returncode == 0 and "soma: debug" not in p.stderr,
          f"library {case} under SOMA_DEBUG=guard: runs clean ({p.returncode}) {p.stderr[-1500:]}")

for case in ("clean", "threads", "fork"):  # threads free each other's guarded blocks
    p = run([misuse, case], {"SOMA_GUARD_SAMPLE": "2"})
    check(p.returncode == 0 and "soma:" not in p.stderr,
          f"library {case} under SOMA_GUARD_SAMPLE=2: runs clean ({p.returncode}) "
          f"{p.stderr[-1500:]}")

# Not a guarded block, but a large one sealed at its free (src/malloc/large.c):
# with the handler installed, the fault is diagnosed all the same.
p = run([prog, "sealed-read", "300000"], dict(PRE, SOMA_GUARD_SAMPLE="1000000000"))
m = re.search(r"block (0x[0-9a-f]+) size 300000", p.stderr)
check(p.returncode in SEGV and m is not None and re.search(
    r"soma: guard: a read of 0x[0-9a-f]+ faulted: use after free: it lies in a large block's "
    r"mapping that soma sealed when the block was freed\n  the address is B\+100 \(B = "
    + m.group(1) + r", the block's start; 303104 bytes mapped\)\nsoma: guard: the program stops "
    r"with SIGSEGV", p.stderr) is not None and "not caught" not in p.stdout,
      f"a read of a sealed large block: diagnosed by the handler ({p.returncode}) "
      f"{p.stderr[-1000:]}")

# A thread with the smallest stack (16 KiB): the handler still has room.
expect("overflow in a thread of PTHREAD_STACK_MIN", [prog, "thread-overflow", "48"],
       dict(PRE, SOMA_GUARD_SAMPLE="1"), SEGV, r"soma: guard: a write to 0x[0-9a-f]+ faulted: ",
       "buffer overflow: the 1st byte past the end", offset="+48", caller=None)

# A handler of the program's, installed after soma's, replaces it; one that
# hands the fault on to the handler it replaced keeps soma's diagnosis.
p = run([prog, "own-handler", "64"], dict(PRE, SOMA_GUARD_SAMPLE="1"))
check(p.returncode == 42 and "the program's own handler ran" in p.stderr
      and "soma: guard: a write" not in p.stderr,
      f"a handler installed later replaces soma's ({p.returncode}) {p.stderr[-1000:]}")
expect("a handler that chains to soma's", [prog, "chained-handler", "64"],
       dict(PRE, SOMA_GUARD_SAMPLE="1"), SEGV, r"soma: guard: a write to 0x[0-9a-f]+ faulted: ",
       "buffer overflow: the 1st byte past the end", offset="+64",
       more=[r"^the program's own handler ran\n|\nthe program's own handler ran\n"])

# About one allocation in N: 20000 blocks of 32 bytes, kept live; the
# guarded ones end at a page boundary, all in one range of addresses.
for n, lo, hi in ((1, 16384, 16384), (10, 1700, 2300), (100, 140, 260)):
    p = run([prog, "count"], dict(PRE, SOMA_GUARD_SAMPLE=str(n)))
    m = re.search(r"guarded (\d+) of 20000, range (\d+) MiB", p.stdout)
    check(p.returncode == 0 and m is not None and lo <= int(m.group(1)) <= hi
          and int(m.group(2)) < 17 * 1024,
          f"SOMA_GUARD_SAMPLE={n}: {lo} to {hi} of 20000 guarded, in the guard range "
          f"({p.stdout.strip()})")
    if n == 1:  # the limit of live guarded blocks, said once
        check(p.stderr.count("soma: warning: guard: as many guarded blocks are live as soma allows") == 1,
              f"SOMA_GUARD_SAMPLE=1: the fallback is said once ({p.stderr[-500:]})")
# SOMA_DEBUG=guard asks for every block: the same limit, reached by any real
# program, is not said (the statistics count the blocks left unguarded).
p = run([prog, "count"], dict(PRE, SOMA_DEBUG="guard", SOMA_DEBUG_LEAKS="0"))
m = re.search(r"guarded (\d+) of 20000", p.stdout)
check(p.returncode == 0 and m is not None and int(m.group(1)) >= 16384
      and "soma: warning" not in p.stderr,
      f"SOMA_DEBUG=guard: 16384 of 20000 guarded (a debug block may end on a page by "
      f"chance), the limit not said ({p.returncode}) "
      f"{p.stdout.strip()} {p.stderr[-500:]}")
p = run([prog, "count"], dict(PRE, SOMA_GUARD_SAMPLE="0"))
check("guarded 0 of" in p.stdout, f"SOMA_GUARD_SAMPLE=0: none guarded ({p.stdout.strip()})")
p = run([prog, "count"], dict(PRE, SOMA_GUARD_SAMPLE="-3"))
check("SOMA_GUARD_SAMPLE=-3 is not" in p.stderr and "guarded 0 of" in p.stdout,
      "SOMA_GUARD_SAMPLE=-3: a warning, and off")

# A fault that is not soma's goes on to the default action, as without soma.
p = run(["python3", "-c", "import ctypes; ctypes.string_at(8)"],
        dict(PRE, SOMA_GUARD_SAMPLE="1000", PYTHONMALLOC="malloc"))
check(p.returncode in SEGV and "soma:" not in p.stderr,
      f"a fault outside the guard range: SIGSEGV as usual, no diagnosis ({p.returncode}) "
      f"{p.stderr[-500:]}")

# Real programs: no false alarm.
PY = r"""
import json, sqlite3, threading
d = [{'a': i, 'b': str(i) * 3, 'c': [i] * (i % 7)} for i in range(30000)]
assert json.loads(json.dumps(d)) == d
c = sqlite3.connect(':memory:')
c.execute('create table t(x, y)')
c.executemany('insert into t values(?, ?)', [(i, str(i) * 5) for i in range(10000)])
assert c.execute('select count(*), sum(x) from t').fetchone() == (10000, sum(range(10000)))
def work(k):
    x = {str(i): bytes(i % 300) for i in range(10000)}
    del x
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print('ok')
"""
p = run([sys.executable, "-c", PY], dict(PRE, SOMA_GUARD_SAMPLE="100", PYTHONMALLOC="malloc"))
check(p.returncode == 0 and p.stdout.strip() == "ok" and "soma:" not in p.stderr,
      f"python3 under SOMA_GUARD_SAMPLE=100: runs clean ({p.returncode}) {p.stderr[-2000:]}")
p = run([cli, "run", "--debug=guard", "--no-children", "--", sys.executable, "-c",
         "import json; d = [{'k': str(i)} for i in range(5000)]; "
         "assert json.loads(json.dumps(d)) == d; print('ok')"], {}, timeout=120)
check(p.returncode == 0 and p.stdout.strip() == "ok" and "soma: debug: " not in p.stderr,
      f"python3 under soma run --debug=guard: runs clean ({p.returncode}) {p.stderr[-2000:]}")

done("test_guard")
