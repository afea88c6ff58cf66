"""test_copies.py: checked copies (src/runtime/copy.c): a copy into one of
soma's blocks that runs past it is stopped before it is made, with the
diagnosis expected, in normal and in debug mode.

Usage: test_copies.py COPY_MISUSE COPY_MISUSE_FORTIFY OVERRIDE_SO LIBSOMA_SO [SANITIZE]

Each case of tests/debug/copy_misuse.c makes one bad copy in a fresh
process under the override: memcpy, memmove, mempcpy, memset, strcpy,
stpcpy, strcat, strncpy and strncat, 16 bytes past what malloc_usable_size
says, into blocks of 24, 4096 and 262144 bytes; a copy starting before a
block; a copy into a freed block (debug mode); the same built with
-D_FORTIFY_SOURCE=2, where __memcpy_chk and __strcpy_chk are the calls;
glibc's own fortify check kept.  Then the legal copies (exactly filling
blocks, to the stack and globals, overlapping memmove, realloc'd blocks,
with threads and fork) raise no alarm, normal mode checks the copies
longer than a small block by default and all with SOMA_CHECK_COPIES=1
(debug mode always), and libsoma.so interposes none of these names.  The override does not
mix with the sanitizers' interposition: a sanitizer build skips it all."""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import check, done  # noqa: E402

misuse, fortify, override, libsoma = sys.argv[1:5]
sanitized = len(sys.argv) > 5 and sys.argv[5] != ""
if sanitized:
    print("test_copies: skipped in a sanitizer build (LD_PRELOAD does not mix with it)")
    done("test_copies")
    sys.exit(0)

ABORTED = (-signal.SIGABRT, 128 + signal.SIGABRT)
OPS = ["memcpy", "memmove", "mempcpy", "memset", "strcpy", "stpcpy", "strcat", "strncpy",
       "strncat"]
SIZES = {"small": 24, "medium": 4096, "large": 262144}


def run(prog, case, env):
    e = dict(os.environ, LD_PRELOAD=override, **env)
    return subprocess.run([prog, case], env=e, capture_output=True, text=True, timeout=120)


def the_block(name, p):
    m = re.search(r"block (0x[0-9a-f]+) size (\d+) usable (\d+)\n", p.stderr)
    if not check(m is not None, f"{name}: the program said which block"):
        print(p.stderr)
        return None
    return m.group(1), int(m.group(2)), int(m.group(3)), p.stderr[m.end():]


def call_re(fn, args, either=False):
    """The call as the diagnosis writes it: fn(0x..., 0x..., n) and the like;
    either: fn or its _FORTIFY_SOURCE form (__fn_chk), whichever the
    compiler chose (gcc keeps strcpy when it cannot size the object, clang
    calls __strcpy_chk with an unknown size)."""
    a = {"mem": r"0x[0-9a-f]+, 0x[0-9a-f]+, \d+", "set": r"0x[0-9a-f]+, 0x[0-9a-f]{2}, \d+",
         "str": r"0x[0-9a-f]+, 0x[0-9a-f]+"}[args]
    name = f"(?:__)?{re.escape(fn)}(?:_chk)?" if either else re.escape(fn)
    return name + r"\(" + a + r"\)"


def args_of(op):
    return "set" if op == "memset" else "str" if op in ("strcpy", "stpcpy", "strcat") else "mem"


def expect(name, prog, case, env, debug, fn, says, more=(), either=False, names_block=True):
    p = run(prog, case, env)
    if not check(p.returncode in ABORTED, f"{name}: stopped by abort (status {p.returncode})"):
        print(p.stderr)
        return
    got = the_block(name, p)
    if got is None:
        return
    addr, size, usable, diag = got
    if callable(says):  # what it says depends on the block's usable size
        says = says(usable)
    ok = check("not caught" not in diag, f"{name}: stopped before the copy returned")
    head = "soma: debug: " if debug else "soma: fatal: "
    pat = re.escape(head) + call_re(fn, args_of(fn.strip("_").replace("_chk", "")), either) + \
        ": " + re.escape(says)
    ok &= check(re.search(pat, diag) is not None, f"{name}: /{pat}/")
    if debug and names_block:
        ok &= check(f"block {addr}: {size} bytes asked, serial " in diag,
                    f"{name}: names block {addr} and its {size} bytes asked")
        ok &= check("soma: debug: aborting" in diag, f"{name}: says it aborts")
    for m in more:
        m = m.format(addr=addr, size=size, usable=usable, end=usable + 15)
        ok &= check(re.search(m, diag) is not None,
                    f"{name}: /{m}/")
    if not ok:
        print(p.stderr)


NORMAL = {"SOMA_CHECK_COPIES": "1"}  # normal mode checks every copy when asked (the option)
DEBUG = {"SOMA_DEBUG": "1"}

# ---- overflows past the end: every call, every size, both modes ----
for op in OPS:
    for sz in SIZES:
        case = f"{op}-{sz}"
        # py38's geometry (4 KiB pools) makes a 4096-byte block a large one
        large = sz == "large" or (sz == "medium" and os.environ.get("SOMA_TEST_GEOMETRY") == "py38")
        # normal mode: the block's usable size (its class's, or its mapping's)
        expect(f"normal {case}", misuse, case, NORMAL, False, op,
               "buffer overflow: the copy runs 16 bytes past the block",
               [r"\n  block {addr}: {usable} bytes usable" +
                (", a large block" if large else r" \(size class \d+\), in a thread's heap") +
                r"; the copy writes B\+\d+ to B\+{end} \(B = the block\)"])
        # debug mode: the size asked
        expect(f"debug {case}", misuse, case, DEBUG, True, op,
               "buffer overflow: the copy runs 16 bytes past the block",
               [r"made by malloc" + (", a large block" if large else " in a thread's heap") +
                "; live",
                r"the copy writes U\+\d+ to U\+{end} \(U = {addr}; the block's {size} bytes "
                r"end at U\+{size}\)"])

# ---- a copy that starts 8 bytes before a block ----
# (the neighbour, made for 24 bytes too, holds 32, or 24 with a small tail:
# the copy's B+24 .. B+39 of it)
expect("normal before", misuse, "before", NORMAL, False, "memcpy",
       lambda usable: f"buffer overflow: the copy runs {40 - usable} bytes past the block",
       [r"the copy writes B\+\d+ to B\+\d+ \(B = the block\)"])
expect("debug before", misuse, "before", DEBUG, True, "memcpy",
       "buffer underflow: the copy starts 8 bytes before the block",
       [r"the copy writes U-8 to U\+7 \(U = {addr};"])

# ---- a copy into a freed block: debug mode's quarantine ----
for sz in ("small", "large"):
    expect(f"debug after-free-{sz}", misuse, f"after-free-{sz}", DEBUG, True, "memcpy",
           "write after free: the copy writes into a freed block",
           [r"; freed \(in quarantine\)"])
# ---- normal mode: a large block's mapping sealed at its free (the first
# of its size: src/malloc/large.c) ----
expect("normal after-free-large", misuse, "after-free-large", NORMAL, False, "memcpy",
       "write after free: the copy writes into a large block's mapping that soma sealed when "
       "the block was freed", [r"sealed when the block was freed \({addr}, 266240 bytes mapped\)"],
       names_block=False)

# ---- a large block freed and another made where it was ----
expect("normal reused", misuse, "reused", NORMAL, False, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block", [r", a large block;"])

# ---- a constructor's copy, before main ----
expect("normal ctor", misuse, "ctor", NORMAL, False, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block")
expect("debug ctor", misuse, "ctor", DEBUG, True, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block")

# ---- _FORTIFY_SOURCE=2 ----
syms = subprocess.run(["nm", "-u", fortify], capture_output=True, text=True).stdout
check("__strcpy_chk" in syms, "the fortify build calls __strcpy_chk")
for op in ("memcpy", "strcpy", "strcat", "memset"):
    for mode, env, debug in (("normal", NORMAL, False), ("debug", DEBUG, True)):
        expect(f"fortify {mode} {op}-small", fortify, f"{op}-small", env, debug, op,
               "buffer overflow: the copy runs 16 bytes past the block", either=True)
for mode, env, debug in (("normal", NORMAL, False), ("debug", DEBUG, True)):
    expect(f"fortify {mode} __memcpy_chk", fortify, "fortify", env, debug, "__memcpy_chk",
           "buffer overflow: the copy runs 16 bytes past the block")
    expect(f"fortify {mode} __strcpy_chk", fortify, "fortify-strcpy", env, debug, "__strcpy_chk",
           "buffer overflow: the copy runs 16 bytes past the block")
    # plain build: the same mistakes through the plain names (and
    # __memcpy_chk called by hand)
    expect(f"plain {mode} fortify", misuse, "fortify", env, debug, "__memcpy_chk",
           "buffer overflow: the copy runs 16 bytes past the block")
    expect(f"plain {mode} fortify-strcpy", misuse, "fortify-strcpy", env, debug, "strcpy",
           "buffer overflow: the copy runs 16 bytes past the block")
# glibc's own check stays, with its message, with soma and without
for env in ({}, {"LD_PRELOAD": override}, {"LD_PRELOAD": override, "SOMA_DEBUG": "1"}):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(env)
    p = subprocess.run([fortify, "fortify-glibc"], env=e, capture_output=True, text=True,
                       timeout=60)
    check(p.returncode in ABORTED and "*** buffer overflow detected ***" in p.stderr
          and "soma:" not in p.stderr,
          f"glibc's fortify check, {env or 'glibc alone'}: its own message "
          f"({p.returncode}) {p.stderr[-500:]}")

# ---- no false alarm ----
for prog in (misuse, fortify):
    for mode, env in (("normal", NORMAL), ("debug", DEBUG), ("report", {"SOMA_DEBUG": "report"})):
        p = run(prog, "clean", env)
        # The leak report at exit (debug mode) is no alarm: the program's
        # threads leave glibc's thread records in use.
        said = [l for l in p.stderr.splitlines()
                if l.startswith("soma:") and not l.startswith("soma: leaks at exit")]
        check(p.returncode == 0 and not said,
              f"{os.path.basename(prog)} clean, {mode} mode: no false alarm "
              f"({p.returncode}) {p.stderr[-2000:]}")

# ---- the option: by default (the override's 513) copies longer than a
# small block are checked, the string copies without a length are not;
# a number N checks copies of N bytes or more; 0 none ----


def unchecked(name, case, env):
    """The copy is made: the program says it went on, or (py38's geometry,
    where the 4096-byte block is a one-page large block) dies of the fault
    past its page; no diagnosis at the call either way."""
    p = run(misuse, case, env)
    one_page = os.environ.get("SOMA_TEST_GEOMETRY") == "py38" and "medium" in case
    made = "not caught" in p.stderr or (one_page and p.returncode == -signal.SIGSEGV)
    check(made and not re.search(r"soma: fatal: \w+\(", p.stderr),
          f"{name}: {case} not checked at the call ({p.returncode}) {p.stderr[-800:]}")


for case in ("memcpy-medium", "memcpy-large", "memset-large", "strncpy-large"):
    op = case.split("-")[0]
    expect(f"by default {case}", misuse, case, {}, False, op,
           "buffer overflow: the copy runs 16 bytes past the block")
for case in ("memcpy-small", "memset-small", "strcpy-large", "stpcpy-medium", "strcat-large"):
    unchecked("by default", case, {})
for case in ("memcpy-large", "memcpy-medium"):
    unchecked("SOMA_CHECK_COPIES=0", case, {"SOMA_CHECK_COPIES": "0"})
# the medium case copies its block's usable size and 16 (5440 bytes, its
# class's size), the large one far more
unchecked("SOMA_CHECK_COPIES=6000", "memcpy-medium", {"SOMA_CHECK_COPIES": "6000"})
expect("SOMA_CHECK_COPIES=6000 memcpy-large", misuse, "memcpy-large",
       {"SOMA_CHECK_COPIES": "6000"}, False, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block")
unchecked("SOMA_CHECK_COPIES=40", "strcpy-medium", {"SOMA_CHECK_COPIES": "40"})
expect("SOMA_CHECK_COPIES=40 memcpy-small", misuse, "memcpy-small",
       {"SOMA_CHECK_COPIES": "40"}, False, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block")
p = run(misuse, "memcpy-large", {"SOMA_CHECK_COPIES": "some"})
check("soma: warning: SOMA_CHECK_COPIES=some is not a boolean" in p.stderr and
      "using the default, 513" in p.stderr and "buffer overflow" in p.stderr,
      f"a bad value: a warning and the default ({p.returncode}) {p.stderr[-800:]}")
expect("SOMA_CHECK_COPIES=0 in debug mode", misuse, "memcpy-small",
       {"SOMA_CHECK_COPIES": "0", "SOMA_DEBUG": "1"}, True, "memcpy",
       "buffer overflow: the copy runs 16 bytes past the block")
p = run(misuse, "memcpy-small", {"SOMA_DEBUG": "report"})
check(p.returncode == 0 and "not caught" in p.stderr and
      p.stderr.count("soma: debug: memcpy(") == 1 and "aborting" not in p.stderr,
      f"SOMA_DEBUG=report: reported, the copy not made, the program goes on ({p.returncode})")

# ---- only the override interposes ----
def defined(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                         text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


NAMES = set(OPS) | {"__memcpy_chk", "__memmove_chk", "__mempcpy_chk", "__memset_chk",
                    "__strcpy_chk", "__stpcpy_chk", "__strcat_chk", "__strncpy_chk",
                    "__strncat_chk"}
check(not (defined(libsoma) & NAMES), f"libsoma.so defines none of {sorted(NAMES)}")
check(NAMES <= defined(override), "the override defines them all")
# soma's own copies reach the C library's functions (-Wl,--wrap), never the
# checked ones: no call or jump in the override lands on one of the names.
dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", override], capture_output=True,
                     text=True).stdout
calls = re.findall(r"\b(?:call|jmp)\w*\s+[0-9a-f]+ <(" + "|".join(map(re.escape, NAMES)) +
                   r")(?:@plt)?>", dis)
check(dis != "" and not calls, f"nothing in the override calls its own checked copies: {calls[:5]}")

done("test_copies")
