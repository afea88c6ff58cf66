"""test_checkers.py: memory checkers see soma's blocks (src/os/track.h).

Usage: test_checkers.py MISUSE_LIBC MISUSE_ASAN OVERRIDE_SO VALGRIND_SO [SANITIZE]

valgrind: memcheck normally replaces every malloc, soma's included; told
to leave the program's own alone (--soname-synonyms=somalloc=
nouserintercepts) it runs soma but sees nothing wrong inside soma's
arenas.  libsoma-override-valgrind.so describes each block to it, so the
mistakes of tests/debug/debug_misuse.c come out as memcheck reports them for
its own allocator: the kind of access, its size, where it lies relative to
which block of what size, a leak with its byte count.  The plain override
is run once too, to show what the build is for (the overflow goes unseen).

AddressSanitizer: MISUSE_ASAN is debug_misuse built with -fsanitize=address
and soma inside, which poisons what the program must not touch: overflows
and uses after free of soma's blocks are reported as use-after-poison.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import check, done, need  # noqa: E402

misuse_libc, misuse_asan, override, vg_lib = sys.argv[1:5]
sanitize = sys.argv[5] if len(sys.argv) > 5 else ""


def run(cmd, env_extra):
    env = dict(os.environ, **env_extra)
    env.pop("SOMA_DEBUG", None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


# ---- valgrind ----
MEMCHECK = {
    "overflow": [r"Invalid write of size 1",
                 r"is 0 bytes after a block of size 24 alloc'd"],
    "realloc-overflow": [r"Invalid write of size 1",
                         r"is 2 bytes after a block of size 10 alloc'd"],
    "write-after-free": [r"Invalid write of size 1",
                         r"is 5 bytes inside a block of size 32 free'd"],
    "read-after-free": [r"Invalid read of size 1",
                        r"is 0 bytes inside a block of size 32 free'd"],
    "uninitialised": [r"Conditional jump or move depends on uninitialised value"],
    # the summary: one loss record of 3 blocks under gcc, three of one
    # each where clang unrolls the loop (three call sites)
    "leak": [r"definitely lost: 300 bytes in 3 blocks"],
}
if sanitize:
    print("sanitized build: valgrind is left out (it cannot run sanitized programs)")
elif not vg_lib:
    print("no valgrind headers at build time: the valgrind build was not made")
    check(False, "valgrind/memcheck.h was missing when the build was configured")
elif need(["valgrind"], lambda: shutil.which("valgrind") is not None):
    vg = ["valgrind", "--soname-synonyms=somalloc=nouserintercepts", "--leak-check=full",
          "--error-exitcode=99"]
    for case, pats in MEMCHECK.items():
        p = run(vg + [misuse_libc, case], {"LD_PRELOAD": vg_lib})
        ok = check(p.returncode == 99, f"memcheck {case}: errors found (status {p.returncode})")
        for pat in pats:
            ok &= check(re.search(pat, p.stderr) is not None, f"memcheck {case}: /{pat}/")
        # The block was soma's: memcheck names soma's hook as the allocator.
        ok &= check("soma__track_alloc" in p.stderr or case == "uninitialised",
                    f"memcheck {case}: the block came from soma")
        if not ok:
            print(p.stderr[-3000:])
    for case in ("clean", "usable-write"):
        p = run(vg + [misuse_libc, case], {"LD_PRELOAD": vg_lib})
        check(p.returncode == 0 and "ERROR SUMMARY: 0 errors" in p.stderr,
              f"memcheck {case}: no false report ({p.returncode})\n{p.stderr[-3000:]}")
    # Blocks left in a destroyed explicit heap are not leaks.
    p = run(vg + [misuse_libc, "destroyed-heap-live"], {"LD_PRELOAD": vg_lib})
    check(p.returncode == 0 and "ERROR SUMMARY: 0 errors" in p.stderr
          and "definitely lost" not in p.stderr,
          f"memcheck: a destroyed heap's blocks are forgotten, not leaked ({p.returncode})\n"
          f"{p.stderr[-3000:]}")
    # Without the build: soma runs, and memcheck sees nothing.
    p = run(vg + [misuse_libc, "overflow"], {"LD_PRELOAD": override})
    check("ERROR SUMMARY: 0 errors" in p.stderr,
          "the plain override under memcheck: the overflow goes unseen (why the build exists)")
    # A real program: python3's objects through soma.  memcheck must find
    # what it finds with its own allocator, no more (Debian's python3 is
    # clean; a python built elsewhere may not be, under either).
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    prog = ("import json\n"
            "d = [{'k': i, 's': str(i) * 3} for i in range(20000)]\n"
            "assert json.loads(json.dumps(d)) == d\n"
            "print('ok')\n")
    counts = {}
    for who, extra, lib in (("memcheck's malloc", [], None),
                            ("soma", ["--soname-synonyms=somalloc=nouserintercepts"], vg_lib)):
        env = {"PYTHONMALLOC": "malloc", "SOMA_SHOW_STATS": "1"}
        if lib:
            env["LD_PRELOAD"] = lib
        p = run(["valgrind", "--leak-check=no", *extra, py, "-c", prog], env)
        m = re.search(r"ERROR SUMMARY: (\d+) errors", p.stderr)
        check(p.stdout.strip() == "ok" and m is not None, f"python3 under memcheck ({who}) ran")
        counts[who] = int(m.group(1)) if m else -1
        if lib:
            b = re.search(r"# bytes in allocated blocks\s+=\s+([\d,]+)", p.stderr)
            check(b is not None and int(b.group(1).replace(",", "")) > 0,
                  "python3 under memcheck: soma served its blocks (its dump at exit)")
    check(counts["soma"] == counts["memcheck's malloc"],
          f"python3 under memcheck: as many errors with soma as with memcheck's own malloc "
          f"({counts})")

# ---- AddressSanitizer ----
ASAN = {
    "overflow": "WRITE of size 1",
    "write-after-free": "WRITE of size 1",
    "read-after-free": "READ of size 1",
    "realloc-overflow": "WRITE of size 1",
}
if misuse_asan == "none":
    print(f"a {sanitize} build: AddressSanitizer is left out (it does not mix with it)")
else:
    opts = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=42"}
    for case, access in ASAN.items():
        p = run([misuse_asan, case], opts)
        m = re.search(r"block (0x[0-9a-f]+) size (\d+)", p.stderr)
        ok = check(p.returncode == 42, f"asan {case}: reported (status {p.returncode})")
        ok &= check("ERROR: AddressSanitizer: use-after-poison" in p.stderr,
                    f"asan {case}: use-after-poison")
        ok &= check(access in p.stderr, f"asan {case}: {access}")
        a = re.search(r"on address (0x[0-9a-f]+)", p.stderr)
        if ok and m is not None and a is not None:
            # The address ASan names lies in or just past the block soma gave.
            off = int(a.group(1), 16) - int(m.group(1), 16)
            ok &= check(0 <= off <= int(m.group(2)) + 16,
                        f"asan {case}: the address is the block's (offset {off})")
        else:
            ok &= check(False, f"asan {case}: names the block and the address")
        if not ok:
            print(p.stderr[-3000:])
    for case in ("clean", "usable-write"):
        p = run([misuse_asan, case], opts)
        check(p.returncode == 0 and "AddressSanitizer" not in p.stderr,
              f"asan {case}: no false report ({p.returncode})\n{p.stderr[-3000:]}")

done("test_checkers")
