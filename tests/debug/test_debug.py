"""test_debug.py: debug mode (src/malloc/debug.c) catches each mistake and says
what happened.

Usage: test_debug.py DEBUG_MISUSE DEBUG_MISUSE_LIBC OVERRIDE_SO SOMA_CLI [SANITIZE]

Each case of tests/debug/debug_misuse.c commits one mistake in a fresh process
under SOMA_DEBUG.  The test checks that the process was stopped by abort
(or, with SOMA_DEBUG=report, carried on), and that the diagnosis names
the call that found it, the block's address as the program printed it,
its size, a serial number, the call that made it, and for damaged bytes
their offset and the bytes found.  Through the library (soma_* calls),
through the LD_PRELOAD override (malloc and free), and through
`soma run --debug`; then real programs (python3, with threads, sqlite and
json) run clean under debug mode, so it raises no false alarm.
Sanitizer builds leave out the parts that preload the override."""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import check, done  # noqa: E402

misuse, misuse_libc, override, cli = sys.argv[1:5]

# The stack a diagnosis gives: frames in the program (named with
# -rdynamic, or by the program's file and an offset).
MADE = r"  the block was made at:\n    #0 0x[0-9a-f]+ .*debug_misuse"
sanitized = len(sys.argv) > 5 and sys.argv[5] != ""

# case: (the call that finds it, what it says, API that made the block,
#        further patterns the message must hold)
LIB = {
    "overflow": ("soma_free", "buffer overflow", "soma_malloc",
                 [r"1 byte changed, at U\+24 ", r"at U\+24 found:\s+41 fd"]),
    "underflow": ("soma_free", "buffer underflow", "soma_malloc",
                  [r"at U-1 expected: fd\n", r"at U-1 found:\s+55\n"]),
    "double-free": ("soma_free", "double free: the block is free already", "soma_malloc",
                    [r"freed \(in quarantine\)"]),
    "double-free-late": ("soma_free", "double free", "soma_malloc",
                         [r"freed and released to its pool"]),
    "bad-pointer": ("soma_free", "not a block soma returned: it points 16 bytes into this one",
                    "soma_malloc", []),
    "write-after-free": (None, "write after free", "soma_malloc",
                         [r"the quarantine found block", r"at U\+5 found:\s+57 dd dd"]),
    "realloc-overflow": ("soma_realloc", "buffer overflow", "soma_malloc",
                         [r"at U\+12 found:\s+52 fd"]),
    "large-overflow": ("soma_free", "buffer overflow", "soma_malloc",
                       [r"a large block", r"at U\+100003 found:\s+4c fd"]),
    "aligned-underflow": ("soma_free", "buffer underflow", "soma_aligned_alloc",
                          [r"at U-2 found:\s+61 fd"]),
    "usable-after-free": ("soma_usable_size", "use after free", "soma_malloc", []),
    "check": (None, "buffer overflow", "soma_malloc",
              [r"soma_debug_check found block", r"at U\+203 found:\s+43 fd"]),
    "destroyed-heap": ("soma_free", "a block of a destroyed heap", "soma_heap_malloc",
                       [r"in explicit heap 0x[0-9a-f]+"]),
    "heap-overflow": ("soma_heap_realloc", "buffer overflow", "soma_heap_calloc",
                      [r"at U\+64 found:\s+48 fd", r"in explicit heap"]),
    # Found at exit: blocks never freed, or still in the quarantine; each
    # diagnosis with the stack that made the block, then the leak report.
    "exit-overflow": (None, "found block {addr}: buffer overflow: the guard bytes after the block "
                      "were overwritten", "soma_malloc",
                      [r"the check at exit found block", r"; live\n", r"1 byte changed, at U\+24 ",
                       r"at U\+24 found:\s+41 fd", MADE, r"\nsoma: leaks at exit"]),
    "exit-underflow": (None, "found block {addr}: buffer underflow", "soma_malloc",
                       [r"the check at exit found block", r"at U-1 expected: fd\n",
                        r"at U-1 found:\s+55\n", MADE]),
    "exit-large-overflow": (None, "buffer overflow", "soma_malloc",
                            [r"the check at exit found block", r"a large block; live",
                             r"at U\+100003 found:\s+4c fd", MADE]),
    "exit-write-after-free": (None, "found block {addr}: write after free: the block was changed "
                              "after it was freed (found at exit)", "soma_malloc",
                              [r"freed \(in quarantine\)", r"at U\+5 found:\s+57 dd dd", MADE]),
}
# The same mistakes through malloc and free (the override's names).
LIBC = {k: v for k, v in LIB.items()
        if k not in ("check", "destroyed-heap", "heap-overflow")}
NAMES = {"soma_free": "free", "soma_realloc": "realloc", "soma_usable_size":
         "malloc_usable_size", "soma_malloc": "malloc", "soma_aligned_alloc": "aligned_alloc"}


def run(cmd, env_extra, what):
    env = dict(os.environ, **env_extra)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    return p


def expect_caught(name, cmd, env, spec, libc):
    fn, says, api, more = spec
    if libc:
        fn = NAMES.get(fn, fn)
        api = NAMES.get(api, api)
    p = run(cmd, env, name)
    err = p.stderr
    if not check(p.returncode in (-signal.SIGABRT, 128 + signal.SIGABRT),
                 f"{name}: stopped by abort (status {p.returncode})"):
        print(err)
        return
    m = re.search(r"block (0x[0-9a-f]+) size (\d+)", err)
    if not check(m is not None, f"{name}: the program said which block"):
        print(err)
        return
    addr, size = m.group(1), m.group(2)
    diag = err[m.end():]
    ok = check("soma: debug: " in diag, f"{name}: a debug diagnosis")
    if fn is not None:
        ok &= check(re.search(re.escape(fn) + r"\(0x[0-9a-f]+\): " + re.escape(says), diag)
                    is not None, f"{name}: '{fn}(...): {says}'")
    else:
        says = says.replace("{addr}", addr)
        ok &= check(says in diag, f"{name}: '{says}'")
    ok &= check(f"block {addr}: {size} bytes asked, serial " in diag,
                f"{name}: names block {addr} and its {size} bytes")
    ok &= check(re.search(r"serial [1-9]\d*, made by " + re.escape(api) + r"\b", diag)
                is not None, f"{name}: the serial and the call that made it ({api})")
    for pat in more:
        ok &= check(re.search(pat, diag) is not None, f"{name}: /{pat}/")
    # Every diagnosis names the stack that made the block: in the run,
    # printed once the debug lock is let go, before the abort (at exit,
    # after the walk: MADE among the case's patterns).
    if not name.split()[-1].startswith("exit-"):
        ok &= check(re.search(MADE + r"[^\n]*\n(    #\d[^\n]*\n)*soma: debug: aborting", diag)
                    is not None, f"{name}: the stack that made the block, then the abort")
    ok &= check("soma: debug: aborting" in diag, f"{name}: says it aborts")
    if name.split()[-1].startswith("exit-"):
        ok &= check(diag.count("soma: debug: ") == 2, f"{name}: one diagnosis, then the abort")
    if not ok:
        print(err)


DEBUG = {"SOMA_DEBUG": "1"}

# ---- the library ----
for name, spec in LIB.items():
    expect_caught("lib " + name, [misuse, name], DEBUG, spec, False)

p = run([misuse, "clean"], DEBUG, "clean")
check(p.returncode == 0 and "soma: debug" not in p.stderr,
      f"lib clean: no false alarm in debug mode (status {p.returncode}) {p.stderr[:2000]}")
p = run([misuse, "clean"], {"SOMA_DEBUG": "0"}, "clean")
check(p.returncode == 0 and p.stderr == "",
      f"lib clean without debug mode: soma_debug_check finds nothing ({p.returncode})")
p = run([misuse, "read-after-free"], DEBUG, "read-after-free")
check(p.returncode == 0 and p.stdout.strip() == "dd",
      f"a read after free sees the dead fill 0xdd ({p.stdout.strip()!r})")

# No false alarm: threads that come and go while soma_debug_check runs,
# fork from a threaded program, blocks made before soma started.
for case in ("threads", "fork", "early"):
    p = run([misuse, case], DEBUG, case)
    check(p.returncode == 0 and "soma: debug" not in p.stderr,
          f"lib {case}: runs clean in debug mode (status {p.returncode}) {p.stderr[:2000]}")

# Misuse of the heap API itself.
p = run([misuse, "destroy-twice"], DEBUG, "destroy-twice")
check(p.returncode == -signal.SIGABRT and re.search(
    r"soma_heap_destroy\(0x[0-9a-f]+\): the heap was destroyed by soma_heap_destroy", p.stderr),
      f"destroying a heap twice is diagnosed ({p.returncode}) {p.stderr[:2000]}")
p = run([misuse, "buried-heap"], DEBUG, "buried-heap")
m = re.search(r"block (0x[0-9a-f]+) size", p.stderr)
check(p.returncode == -signal.SIGABRT and m is not None and
      f"soma_free({m.group(1)}): not a block soma has now: it lies in an arena soma has given back"
      in p.stderr, f"a free into an arena given back is diagnosed ({p.returncode}) {p.stderr[:2000]}")

# Report mode: three mistakes, three reports, no abort; the program ends.
p = run([misuse, "report"], {"SOMA_DEBUG": "report"}, "report")
reports = p.stderr.count("soma: debug: ")
check(p.returncode == 0, f"report mode: the program goes on to its end ({p.returncode})")
check(reports == 3, f"report mode: 3 reports, not {reports}:\n{p.stderr}")
check("buffer overflow" in p.stderr and "double free" in p.stderr
      and "not a block soma returned" in p.stderr, "report mode: the three diagnoses")
check("aborting" not in p.stderr, "report mode: no abort")
check("still running, 0 more" in p.stdout, "report mode: the check finds nothing more")

# A large block's pages are sealed while it waits in the quarantine: a read
# after free faults at the instruction, and the handler names the block;
# with SOMA_DEBUG=report a write after free is reported and the program
# goes on.
if not sanitized:
    for name, cmd, env, api in (
            ("library", [misuse], {}, "soma_malloc"),
            ("override", [misuse_libc], {"LD_PRELOAD": override}, "malloc")):
        p = run(cmd + ["read-after-free-large"], dict(env, **DEBUG), "read-after-free-large")
        m = re.search(r"block (0x[0-9a-f]+) size 262144\n", p.stderr)
        want = (m is not None and
                f"soma: debug: a read of {hex(int(m.group(1), 16) + 5000)} faulted: use after free: "
                f"the block was freed\n  block {m.group(1)}: 262144 bytes asked, serial " in p.stderr
                and re.search(r"serial \d+, made by " + api + r", a large block; freed \(in "
                              r"quarantine\)\n  the address is U\+5000 \(U = " + m.group(1) +
                              r"; the block's 262144 bytes end at U\+262144\)\n  the block was "
                              r"made at:\n    #0 0x", p.stderr) is not None and
                "the program stops with SIGSEGV, as the access raised it" in p.stderr)
        check(p.returncode in (-signal.SIGSEGV, 128 + signal.SIGSEGV) and want and
              "read " not in p.stdout,
              f"{name} read-after-free-large: faults at the read, the block named "
              f"({p.returncode}) {p.stderr[:2000]}")
        p = run(cmd + ["write-after-free-large"], dict(env, SOMA_DEBUG="report", SOMA_DEBUG_LEAKS="0"),
                "write-after-free-large")
        # (the write is made once the pages are open: the check at exit
        # finds the byte it changed)
        check(p.returncode == 0 and p.stdout == "went on\n" and
              p.stderr.count("soma: debug: ") == 3 and
              re.search(r"soma: debug: a write to 0x[0-9a-f]+ faulted: use after free", p.stderr)
              and "soma: debug: its pages are made accessible again, and the program goes on "
              "(SOMA_DEBUG=report)\n" in p.stderr and
              re.search(r"the check at exit found block 0x[0-9a-f]+: write after free: .*\n.*\n"
                        r"  1 byte changed, at U\+5000 ", p.stderr) is not None,
              f"{name} write-after-free-large, report mode: reported at the write, and on; the "
              f"byte written found at exit ({p.returncode}, {p.stdout!r}) {p.stderr[:2000]}")

if not sanitized:
    # The pad before a large block's header is guard bytes too (not in a
    # checker's build, where a large block has no page of pad).
    p = run([misuse, "underflow-large"], DEBUG, "underflow-large")
    check(p.returncode == -signal.SIGABRT and
          "buffer underflow: the guard bytes before the block were overwritten" in p.stderr,
          f"an underflow of 100 bytes before a large block is found at its free ({p.returncode}) "
          f"{p.stderr[:2000]}")
    # Report mode opens a sealed block when it reports the read: a write
    # after it is found by soma_debug_check.
    p = run([misuse, "read-then-write-large"], {"SOMA_DEBUG": "report", "SOMA_DEBUG_LEAKS": "0"},
            "read-then-write-large")
    check(p.returncode == 0 and p.stdout == f"read {0xDD}\nthe check found 1\n" and
          "a read of" in p.stderr and
          "soma_debug_check found block" in p.stderr and "write after free" in p.stderr,
          f"report mode: a read after free of a large block reported, a write after it found by "
          f"the check ({p.returncode}, {p.stdout!r}) {p.stderr[:2000]}")

# ---- at exit: the check, and the leak report ----
def leak_report(err):
    i = err.find("soma: leaks at exit")
    return err[i:] if i >= 0 else ""


def merged(cmd, env_extra):
    """stdout and stderr into one pipe, as `prog 2>&1 | less` has them."""
    return subprocess.run(cmd, env=dict(os.environ, **env_extra), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


def expect_leaks(name, p, libc):
    """exit-leaks' report: its sites, by size and call, with the allocating
    functions named; what the program freed during exit is not in it."""
    rep = leak_report(p.stderr)
    ok = check(p.returncode == 0, f"{name}: a leak does not change the exit status ({p.returncode})")
    ok &= check("soma: debug" not in p.stderr, f"{name}: a leak is no diagnosis")
    if libc:  # glibc's stdout buffer (4096 bytes) is in use too
        ok &= check(re.search(r"^soma: leaks at exit \(pid \d+\): 9 blocks \(11,596 bytes\) still in "
                              r"use, from \d+ allocation sites \(SOMA_DEBUG_LEAKS=0: no report\)\n",
                              rep) is not None, f"{name}: the total line")
        ok &= check("  by call: malloc 6 blocks (5,596 bytes); calloc 2 blocks (2,000 bytes); "
                    "realloc 1 block (4,000 bytes)\n" in rep, f"{name}: by call")
        ok &= check("  by size asked: 4096 bytes x 1, 4000 bytes x 1, 1000 bytes x 2, "
                    "300 bytes x 5\n" in rep, f"{name}: by size asked")
    else:
        ok &= check(re.search(r"^soma: leaks at exit \(pid \d+\): 9 blocks \(7,550 bytes\) still in "
                              r"use, from \d+ allocation sites \(SOMA_DEBUG_LEAKS=0: no report\)\n",
                              rep) is not None, f"{name}: the total line")
        ok &= check("  by call: soma_malloc 5 blocks (1,500 bytes); soma_calloc 2 blocks (2,000 "
                    "bytes); soma_realloc 1 block (4,000 bytes); soma_heap_malloc 1 block (50 bytes)"
                    "\n" in rep, f"{name}: by call")
        ok &= check("  by size asked: 4000 bytes x 1, 1000 bytes x 2, 300 bytes x 5, 50 bytes x 1\n"
                    in rep, f"{name}: by size asked")
        ok &= check(re.search(r"\n  50 bytes in 1 block of 50 bytes, made at:\n    #0 0x", rep)
                    is not None, f"{name}: the explicit heap's block")
    frame0 = r", made at:\n    #0 0x[0-9a-f]+ {}\+0x[0-9a-f]+ \(.*debug_misuse"
    ok &= check(re.search(r"\n  4,000 bytes in 1 block of 4000 bytes" + frame0.format("leaky_grow"),
                          rep) is not None, f"{name}: realloc's site, named")
    # (A compiler may unroll the loop of 5 calls into 5 sites.)
    ok &= check(re.search(r"\n  [\d,]+ bytes in [1-5] blocks? of 300 bytes" +
                          frame0.format("leaky_table"), rep) is not None,
                f"{name}: malloc's site, named")
    ok &= check(re.search(r"\n  [12],000 bytes in [12] blocks? of 1000 bytes" +
                          frame0.format("leaky_zeros"), rep) is not None,
                f"{name}: calloc's site, named")
    ok &= check("777 bytes" not in rep and "555 bytes" not in rep,
                f"{name}: blocks freed by a destructor and an atexit handler are no leaks")
    if not ok:
        print(p.stderr)


expect_leaks("lib exit-leaks", run([misuse, "exit-leaks"], DEBUG, "leaks"), False)
p = merged([misuse, "exit-leaks"], DEBUG)
check(p.stdout.find("the program's last line") < p.stdout.find("soma: leaks at exit") and
      "soma: leaks at exit" in p.stdout,
      f"the program's buffered stdout comes before the report in one pipe:\n{p.stdout[:300]}")
p = run([misuse, "exit-leaks"], {"SOMA_DEBUG": "1", "SOMA_DEBUG_LEAKS": "0"}, "leaks off")
check(p.returncode == 0 and p.stderr == "", f"SOMA_DEBUG_LEAKS=0: no report ({p.returncode}) "
      f"{p.stderr[:2000]}")
p = run([misuse, "exit-overflow"], {"SOMA_DEBUG": "1", "SOMA_DEBUG_LEAKS": "0"}, "leaks off")
check(p.returncode == -signal.SIGABRT and "the check at exit found block" in p.stderr and
      "soma: leaks" not in p.stderr and "made at" not in p.stderr,
      f"SOMA_DEBUG_LEAKS=0: the check at exit still runs, with no stacks ({p.returncode}) "
      f"{p.stderr[:2000]}")
p = run([misuse, "exit-overflow"], {"SOMA_DEBUG": "report"}, "exit report")
check(p.returncode == 0 and p.stderr.count("the check at exit found block") == 1 and
      "soma: leaks at exit" in p.stderr and "aborting" not in p.stderr,
      f"SOMA_DEBUG=report: the check at exit reports, the exit status stays 0 ({p.returncode}) "
      f"{p.stderr[:2000]}")
p = run([misuse, "exit-threads"], DEBUG, "exit-threads")
check(p.returncode == 0 and "soma: debug" not in p.stderr,
      f"lib exit-threads: no false alarm at exit ({p.returncode}) {p.stderr[:2000]}")

# A bad SOMA_DEBUG value: a warning and the default (off).
p = run([misuse, "double-free"], {"SOMA_DEBUG": "maybe"}, "bad value")
check("SOMA_DEBUG=maybe is not" in p.stderr and "soma: debug:" not in p.stderr,
      "SOMA_DEBUG=maybe: a warning, and debug mode stays off")

if not sanitized:
    # ---- the override: the same mistakes through malloc and free ----
    pre = {"LD_PRELOAD": override, "SOMA_DEBUG": "1"}
    for name, spec in LIBC.items():
        expect_caught("override " + name, [misuse_libc, name], pre, spec, True)
    for case in ("clean", "threads", "fork", "usable-write", "exit-threads"):
        p = run([misuse_libc, case], pre, case)
        check(p.returncode == 0 and "soma: debug" not in p.stderr,
              f"override {case}: no false alarm ({p.returncode}) {p.stderr[:2000]}")
    expect_leaks("override exit-leaks", run([misuse_libc, "exit-leaks"], pre, "leaks"), True)
    # A free of no heap block: a global (its object and symbol named), a local.
    aborted = (-signal.SIGABRT, 128 + signal.SIGABRT)
    p = run([misuse_libc, "free-global"], pre, "free-global")
    m = re.search(r"global (0x[0-9a-f]+)\n", p.stderr)
    check(p.returncode in aborted and m is not None and re.search(
          r"free\(" + hex(int(m.group(1), 16) + 8) + r"\): not a heap block: the address lies in "
          r"the code or static data of \S*debug_misuse_libc \(8 bytes into misuse_global\)\n",
          p.stderr) is not None, f"override free-global: diagnosed, object and symbol:\n{p.stderr}")
    p = run([misuse_libc, "free-stack"], pre, "free-stack")
    check(p.returncode in aborted and re.search(
          r"free\(0x[0-9a-f]+\): not a heap block: the address lies on this thread's stack",
          p.stderr) is not None, f"override free-stack: diagnosed:\n{p.stderr}")
    # The same while another thread opens and closes a library: the
    # diagnosis must not wait for the loader's lock under debug mode's
    # (dladdr there was a deadlock: the loader holds its lock while it
    # allocates and frees, in dlopen and dlclose).
    dllib = os.environ.get("SOMA_TEST_DLLIB", "")
    if check(os.path.exists(dllib), f"SOMA_TEST_DLLIB names the library to open ({dllib!r})"):
        env = dict(os.environ, LD_PRELOAD=override, SOMA_DEBUG="report")
        try:
            p = subprocess.run([misuse_libc, "free-global-dlopen"], env=env, capture_output=True,
                               text=True, timeout=60)
            m = re.fullmatch(r"done: (\d+) frees\n", p.stdout)
            check(p.returncode == 0 and m is not None and
                  p.stderr.count("not a heap block") == int(m.group(1)),
                  f"override free-global-dlopen: every free reported, and on (status"
                  f" {p.returncode}, {p.stdout!r}) {p.stderr[-500:]}")
        except subprocess.TimeoutExpired:
            check(False, "override free-global-dlopen: still running after 60 s (a deadlock)")
    # A realloc of no block whose new block is guarded: that block is made
    # before debug mode's lock (guard.c takes a call stack, which may want
    # the loader's lock), and given back once the old pointer is found to
    # be no block.
    p = run([misuse_libc, "realloc-global-guarded"],
            {"LD_PRELOAD": override, "SOMA_DEBUG": "report", "SOMA_GUARD_SAMPLE": "1"},
            "realloc-global-guarded")
    m = re.fullmatch(r"realloc NULL errno EINVAL, guarded in use (\d+) then (\d+), "
                     r"made (\d+) then (\d+)\n", p.stdout)
    check(p.returncode == 0 and m is not None and m.group(1) == m.group(2) and
          int(m.group(4)) >= int(m.group(3)) + 1 and p.stderr.count("soma: debug: ") == 1 and
          "realloc(" in p.stderr and "not a heap block" in p.stderr,
          f"override realloc-global-guarded: reported, NULL with EINVAL, the guarded block made"
          f" for it given back ({p.returncode}, {p.stdout!r}) {p.stderr[:1500]}")
    p = merged([misuse_libc, "exit-leaks"], pre)
    check(p.stdout.find("the program's last line") < p.stdout.find("soma: leaks at exit") and
          "soma: leaks at exit" in p.stdout,
          f"override: the program's stdout comes before the report:\n{p.stdout[:300]}")

    # ---- soma run --debug ----
    expect_caught("soma run --debug", [cli, "run", "--debug", "--", misuse_libc, "double-free"],
                  {}, LIB["double-free"], True)
    # At exit: the check's diagnosis and the leak report both come through.
    expect_caught("soma run --debug exit-overflow",
                  [cli, "run", "--debug", "--no-children", "--", misuse_libc, "exit-overflow"], {},
                  LIB["exit-overflow"], True)
    expect_leaks("soma run --debug exit-leaks",
                 run([cli, "run", "--debug", "--no-children", "--", misuse_libc, "exit-leaks"], {},
                     "run leaks"), True)
    p = run([cli, "run", "--debug=report", "--no-children", "--", misuse_libc, "overflow"], {},
            "run report")
    check(p.returncode == 0 and "buffer overflow" in p.stderr and "aborting" not in p.stderr,
          f"soma run --debug=report: reported, and the program ended normally ({p.returncode})")
    check("Small block threshold" in p.stderr or "class" in p.stderr,
          "soma run --debug=report: the statistics at exit still come")

    # ---- real programs raise no false alarm ----
    prog = r"""
import json, sqlite3, threading
d = [{'a': i, 'b': str(i) * 3, 'c': [i] * (i % 7)} for i in range(60000)]
assert json.loads(json.dumps(d)) == d
c = sqlite3.connect(':memory:')
c.execute('create table t(x, y)')
c.executemany('insert into t values(?, ?)', [(i, str(i) * 5) for i in range(20000)])
assert c.execute('select count(*), sum(x) from t').fetchone() == (20000, sum(range(20000)))
def work(k):
    x = {str(i): bytes(i % 300) for i in range(20000)}
    del x
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print('ok')
"""
    p = run([cli, "run", "--debug", "--no-children", "--", sys.executable, "-c", prog], {},
            "python")
    check(p.returncode == 0 and p.stdout.strip() == "ok" and "soma: debug" not in p.stderr,
          f"python3 under soma run --debug: runs clean ({p.returncode}) {p.stderr[-2000:]}")
    # python3 leaves blocks in use at exit by design: the report stays short
    # (10 sites at most, 6 frames each) and the exit status the program's.
    rep = leak_report(p.stderr)
    sites = re.findall(r"^  [\d,]+ bytes in [\d,]+ blocks? of .*(?:made at:|taken\)|was full\))$", rep,
                       re.M)
    check(rep.startswith("soma: leaks at exit") and 1 <= len(sites) <= 10 and
          len(re.findall(r"^    #\d", rep, re.M)) <= 60 and
          re.search(r"^  and [\d,]+ more allocation sites?: ", rep, re.M) is not None,
          f"python3: a short leak report ({len(sites)} sites, {rep.count(chr(10))} lines)")

    # Empty pools whose pages the decay gave back: the check (here at exit)
    # must not read their free lists, which read as zeros now.
    prog = r"""
import time
x = [str(i) * 3 for i in range(100000)]
del x
for r in range(3):
    time.sleep(0.05)
    y = [str(i) * 5 for i in range(20000)]
    del y
"""
    p = run([sys.executable, "-c", prog], dict(pre, SOMA_DEBUG="report", SOMA_DEBUG_LEAKS="0",
                                               SOMA_ARENA_DECAY_MS="20", PYTHONMALLOC="malloc"),
            "returned pools")
    check(p.returncode == 0 and "soma: debug" not in p.stderr,
          f"pools given back by the decay: no false alarm ({p.returncode}) {p.stderr[:2000]}")

done("test_debug")
