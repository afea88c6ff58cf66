"""bench/hardening.py BENCH_SMALL HARDENED_SO UNHARDENED_SO [--reps N] [--scale N]

What the hardened free lists (src/pool/link.h: encoded links, a double free
caught on the fast path) cost: every bench_small workload under the
override as built (hardened, the default) and under the same override
built with -DSOMA_HARDEN=OFF, alternating, REPS times each.  Prints the
median wall times, their ratio, and the ratio of the fastest runs (this
machine's timings are often bimodal from one process to the next; the
fastest runs show the code's own cost best).  A measurement, not a test.
"""
import os
import statistics
import subprocess
import sys
import time

from peers import parse

WORKLOADS = ["lifo1", "lifo2", "fifo1", "fifo2", "mixed1", "mixed2", "xthread", "tree",
             "strings", "pyobj"]


def main():
    (bench, hard, soft), opts = parse(sys.argv[1:], 3, {"reps": 5, "scale": 1},
                                      __doc__.split("\n")[0])
    hard, soft = os.path.abspath(hard), os.path.abspath(soft)
    print(f"\n## hardening: {opts['reps']} alternating runs each; ratio = hardened / unhardened")
    print(f"{'workload':9} {'hardened s':>11} {'unhardened s':>13} {'median ratio':>13} "
          f"{'min ratio':>10}")
    for w in WORKLOADS:
        t = {hard: [], soft: []}
        for r in range(opts["reps"]):
            for lib in ((hard, soft) if r % 2 == 0 else (soft, hard)):
                env = dict(os.environ, LD_PRELOAD=lib)
                start = time.perf_counter()
                subprocess.run([bench, w, str(opts["scale"])], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t[lib].append(time.perf_counter() - start)
        mh, ms = statistics.median(t[hard]), statistics.median(t[soft])
        print(f"{w:9} {mh:11.3f} {ms:13.3f} {mh / ms:13.2f} {min(t[hard]) / min(t[soft]):10.2f}",
              flush=True)


if __name__ == "__main__":
    main()
