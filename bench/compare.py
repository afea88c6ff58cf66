#!/usr/bin/env python3
"""compare.py: two builds of soma side by side on bench_small's workloads.

For a change that must not cost speed (a restructuring, a refactor): the
override and bench_small of a BEFORE build and an AFTER build (for
example a worktree of the old commit built beside this one), run in
alternation, pair by pair, so that the machine's drift hits both alike.

  wall time:     REPS pairs of runs per workload; the figure is the median
                 of the pairwise ratios after/before (below 1: faster).
  --instructions the exact count of instructions executed, under
                 `valgrind --tool=cachegrind` (one run each: it does not
                 vary), as after/before.

usage: compare.py BEFORE_BUILD AFTER_BUILD [--reps N] [--scale S]
                  [--instructions] [WORKLOAD ...]
A BUILD is a build directory: BUILD/libsoma-override.so and
BUILD/bench/bench_small.
"""
import argparse
import os
import re
import statistics
import subprocess
import time

WORKLOADS = ["lifo1", "fifo1", "mixed1", "xthread", "tree", "strings", "pyobj"]


def command(build, workload, scale):
    return [os.path.join(build, "bench", "bench_small"), workload, str(scale)]


def env(build):
    return dict(os.environ, LD_PRELOAD=os.path.join(build, "libsoma-override.so"))


def wall(build, workload, scale):
    t = time.perf_counter()
    subprocess.run(command(build, workload, scale), env=env(build), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def instructions(build, workload, scale):
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                          "--cachegrind-out-file=/dev/null", "--trace-children=yes", "env",
                          "LD_PRELOAD=" + os.path.join(build, "libsoma-override.so")]
                         + command(build, workload, scale),
                         capture_output=True, text=True, check=True).stderr
    refs = re.findall(r"I\s+refs:\s+([\d,]+)", out)
    return int(refs[-1].replace(",", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--instructions", action="store_true")
    a = ap.parse_intermixed_args()
    for w in a.workloads:
        if a.instructions:
            b, n = instructions(a.before, w, a.scale), instructions(a.after, w, a.scale)
            print(f"{w:10s} instructions before {b:>15,} after {n:>15,}  after/before {n / b:.4f}",
                  flush=True)
            continue
        before, after = [], []
        for _ in range(a.reps):
            before.append(wall(a.before, w, a.scale))
            after.append(wall(a.after, w, a.scale))
        ratio = statistics.median(x / y for x, y in zip(after, before))
        print(f"{w:10s} before {statistics.median(before):.3f} s  after "
              f"{statistics.median(after):.3f} s  after/before {ratio:.3f} "
              f"(median of {a.reps} pairs)", flush=True)


if __name__ == "__main__":
    main()
