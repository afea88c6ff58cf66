#!/usr/bin/env python3
"""bench/counts.py: deterministic figures beside the wall times: instructions
and L1 data misses per operation, for soma and every peer, from cachegrind.

usage: counts.py SOMA_OVERRIDE_SO BENCH_SMALL MB_BUILD [--jobs N] [--only a,b]

The single-threaded workloads run under
`valgrind --tool=cachegrind --cache-sim=yes --trace-children=no` with the
allocator in LD_PRELOAD of valgrind's own environment (valgrind hands it to
the program; preloading through `env` would trace env instead).  Each run
is checked to have run its allocator (its functions in cachegrind's output,
or counts that differ from glibc's).  Workloads, at a scale cachegrind runs
in seconds:
  - soma's random1 (random-order frees, sizes 8..512, ~14,000 live),
    random1k8 (sizes to 8 KiB), lifo1, fifo1, tree, strings and pyobj
    (bench/bench_small.c, a fraction of their wall-time scale);
  - mimalloc-bench's alloc-test 1 (its full 100M operations: it takes no
    size argument), cfrac on a 37-digit number (upstream's 44-digit one
    takes 15 times longer) and espresso on a small random PLA this script
    writes (upstream's largest.espresso takes ~6 s natively: minutes under
    cachegrind).
Per operation where the program says how many mallocs and frees it made
(bench_small's "ops N", alloc-test's count), totals otherwise; then each
allocator's ratio to mimalloc.  The counts are the whole program's: the
workload's own instructions (random numbers, checks) are in every column
alike, so the ratios understate the allocators' differences.  Runs JOBS cachegrinds at a time (the counts
do not depend on it).
"""
import argparse
import concurrent.futures
import os
import random
import re
import subprocess
import sys
import tempfile

from peers import allocators

CFRAC_N = "3000000000000044108000000000084473249"  # 1000000000000012439 * 3000000000000006791
MARKERS = {"mimalloc": "mi_", "tcmalloc": "tcmalloc", "soma": "soma"}


def write_pla(path):
    """A random two-level function for espresso: 10 inputs, 6 outputs, 200 cubes."""
    r = random.Random(13)
    lines = [".i 10", ".o 6", ".p 200"]
    for _ in range(200):
        lines.append("".join(r.choice("01--") for _ in range(10)) + " "
                     + "".join(r.choice("01") for _ in range(6)))
    lines.append(".e")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def workloads(small, mb, tmp):
    pla = os.path.join(tmp, "small.pla")
    write_pla(pla)
    w = {}
    for name, scale in (("random1", "0.05"), ("random1k8", "0.1"), ("lifo1", "0.05"), ("fifo1", "0.05"),
                        ("tree", "0.5"), ("strings", "0.05"), ("pyobj", "0.25")):
        w[name] = [small, name, scale]
    w["alloc-test1"] = [os.path.join(mb, "alloc-test"), "1"]
    w["cfrac"] = [os.path.join(mb, "cfrac"), CFRAC_N]
    w["espresso"] = [os.path.join(mb, "espresso"), pla]
    return w


def grind(cmd, preload, out):
    """(instructions, D1 misses, ops or None, whether the allocator's
    functions are in the profile)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    proc = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--trace-children=no",
                           f"--cachegrind-out-file={out}"] + cmd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"counts.py: {' '.join(cmd)} failed under {preload or 'glibc'}:\n{text[-2000:]}")
    num = lambda s: int(s.replace(",", ""))
    ir = re.search(r"==\d+== I\s+refs:\s+([\d,]+)", text)
    d1 = re.search(r"==\d+== D1\s+misses:\s+[\d,]+\s+\(\s*([\d,]+) rd\s+\+\s+([\d,]+) wr", text)
    if not ir or not d1:
        sys.exit(f"counts.py: no cachegrind summary for {' '.join(cmd)}:\n{text[-2000:]}")
    ops = re.search(r"^ops (\d+)$", text, re.M) or re.search(r"made (\d+) alloc/dealloc operations", text)
    with open(out) as f:
        fns = "\n".join(l for l in f if l.startswith("fn=")).lower()
    os.unlink(out)
    return num(ir.group(1)), num(d1.group(1)) + num(d1.group(2)), int(ops.group(1)) if ops else None, fns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("soma")
    ap.add_argument("bench_small")
    ap.add_argument("mb_build")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if subprocess.run(["sh", "-c", "command -v valgrind"], capture_output=True).returncode != 0:
        print("# valgrind not installed: no counts")
        return
    allocs = allocators(os.path.abspath(args.soma))
    names = [n for n, _ in allocs]
    with tempfile.TemporaryDirectory(prefix="soma-counts-") as tmp:
        work = workloads(os.path.abspath(args.bench_small), os.path.abspath(args.mb_build), tmp)
        only = args.only.split(",") if args.only else list(work)
        missing = [w for w in only if w not in work or not os.path.exists(work[w][0])]
        for w in missing:
            print(f"# {w}: not built or unknown, left out")
        only = [w for w in only if w not in missing]
        print(f"# cachegrind (--cache-sim=yes: 32 KiB L1d model), {len(only)} single-threaded workloads, "
              f"{args.jobs} at a time", flush=True)
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for w in only:
                for n, p in allocs:
                    jobs[w, n] = pool.submit(grind, work[w], p, os.path.join(tmp, f"cg.{w}.{n}"))
            res = {k: f.result() for k, f in jobs.items()}
    for w in only:
        glibc = res[w, "glibc"][0]
        for n in names:
            ir, _, _, fns = res[w, n]
            marker = MARKERS.get(n)
            if (marker and marker not in fns) or (n != "glibc" and ir == glibc):
                print(f"# warning: {w} under {n} may not have run {n} (its functions are not in the profile)")
    base = "mimalloc" if "mimalloc" in names else "glibc"
    for title, idx in (("instructions", 0), ("L1 data misses (D1mr + D1mw)", 1)):
        print(f"\n## {title} per operation (millions in all where the program counts no operations);"
              f" / {base}")
        print(f"{'workload':12}{'ops':>10}" + "".join(f"{n:>10}" for n in names) + "  "
              + "".join(f"{n + '/' + base:>19}" for n in names if n != base))
        for w in only:
            ops = res[w, "soma"][2]
            vals = {n: res[w, n][idx] / ops if ops else res[w, n][idx] / 1e6 for n in names}
            print(f"{w:12}{(str(ops) if ops else 'total'):>10}" + "".join(f"{vals[n]:10.2f}" for n in names)
                  + "  " + "".join(f"{vals[n] / vals[base]:19.2f}" for n in names if n != base), flush=True)


if __name__ == "__main__":
    main()
