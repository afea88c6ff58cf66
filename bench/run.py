#!/usr/bin/env python3
"""bench/run.py: the same benchmark binary under every allocator, side by side.

usage: run.py BENCH_BINARY SOMA_OVERRIDE_SO [--floor FLOOR_SO] [--unhardened SO]
              [--reps N] [--scale N] [--only a,b]

Each workload runs under glibc (nothing preloaded), jemalloc, mimalloc,
tcmalloc and soma (LD_PRELOAD), REPS times, in an order that rotates every
repetition so that no allocator always runs first or last on a noisy
machine.  With --floor, the single-threaded small-size workloads also run under the
"floor" (bench/floor.c: a per-class free list behind soma's own pointer
lookup, the speed limit of soma's design), shown as one more column and
ratio.  With --unhardened, every workload also runs under soma built
without its hardened free lists (src/pool/link.h): the "/unhardened" column is
what hardening costs.  For each run: wall time, and peak RSS (the binary reports its own VmHWM).  The
table shows medians and soma's ratio against each peer (below 1.0: soma is
faster or smaller).  A measurement, never a pass/fail test; it fails only if
a workload computes a wrong result (the binary checks itself).
"""
import os
import statistics
import subprocess
import sys
import time

from peers import allocators, parse

WORKLOADS = ["lifo1", "lifo2", "fifo1", "fifo2", "mixed1", "mixed2", "xthread", "tree",
             "strings", "pyobj"]
# The floor has no threads, and serves only the small sizes (mixed1 would time glibc).
FLOOR_WORKLOADS = {"lifo1", "fifo1", "tree", "strings", "pyobj"}


def run_once(cmd, preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed under {preload or 'glibc'}:\n{proc.stderr}")
    # The binary reports its own peak (VmHWM): rusage would count the runner
    # too, whose memory a forked child carries until exec.
    peak = [int(l.split()[1]) for l in proc.stderr.splitlines() if l.startswith("peak_rss_kib")]
    return wall, peak[0] if peak else 0  # KiB


def main():
    (binary, soma), opts = parse(sys.argv[1:], 2, {"reps": 5, "scale": 1, "only": WORKLOADS,
                                                   "floor": None, "unhardened": None},
                         __doc__)
    soma = os.path.abspath(soma)
    reps, scale, only, floor = opts["reps"], opts["scale"], opts["only"], opts["floor"]
    allocs = allocators(soma)
    if opts["unhardened"]:
        allocs.append(("unhardened", opts["unhardened"]))
    if floor:
        allocs.append(("floor", floor))
    names = [n for n, _ in allocs]
    peers = [n for n in names if n != "soma"]

    def fmt(d, n, f):  # the floor has no figure for multithreaded workloads
        return f % d[n] if n in d else f"{'-':>{len(f % 0)}}"

    def ratio(d, n, key):
        return f"{d[key] / d[n]:9.2f}" if n in d else f"{'-':>9}"
    head = f"{'workload':10} " + " ".join(f"{n + ' s':>11}" for n in names)
    head += "  " + " ".join(f"{'/' + n:>9}" for n in peers)
    print("\n## time (seconds; soma / peer)")
    print(head)
    rows_time, rows_rss = [], []
    for w in only:
        run = [(n, p) for n, p in allocs if n != "floor" or w in FLOOR_WORKLOADS]
        times = {n: [] for n, _ in run}
        rss = {n: [] for n, _ in run}
        for r in range(reps):
            order = run[r % len(run):] + run[:r % len(run)]
            for n, p in order:
                t, m = run_once([binary, w, str(scale)], p)
                times[n].append(t)
                rss[n].append(m)
        mt = {n: statistics.median(v) for n, v in times.items()}
        mr = {n: statistics.median(v) for n, v in rss.items()}
        rows_time.append((w, mt))
        rows_rss.append((w, mr))
        line = f"{w:10} " + " ".join(fmt(mt, n, "%11.3f") for n in names)
        line += "  " + " ".join(ratio(mt, n, "soma") for n in peers)
        print(line, flush=True)
    print("\n## peak RSS (MiB; soma / peer)")
    print(f"{'workload':10} " + " ".join(f"{n:>11}" for n in names)
          + "  " + " ".join(f"{'/' + n:>9}" for n in peers))
    for w, mr in rows_rss:
        mib = {n: v / 1024 for n, v in mr.items()}
        line = f"{w:10} " + " ".join(fmt(mib, n, "%11.1f") for n in names)
        line += "  " + " ".join(ratio(mr, n, "soma") for n in peers)
        print(line)


if __name__ == "__main__":
    main()
