"""bench/sampling.py BENCH_SMALL OVERRIDE [--reps N] [--scale N]

What sampling costs the sampled program: the same runs under the override
with SOMA_STATS_INTERVAL_MS unset, 10 and 1 (soma run --timeline uses 10 by
default), alternating, REPS times each; the median wall time of each, and
the ratio sampled / unsampled.  Samples are written to a temporary
directory, as soma run does.  A measurement, not a test: no threshold.

Workloads: CPython's objects benchmark (bench/python/objects.py, objects
through malloc), and bench_small's pyobj (one thread) and xthread (blocks
freed across threads: the owners take their heap lock more often, the lock
the sampler's walk holds).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from peers import parse

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def main():
    (bench, override), opts = parse(sys.argv[1:], 2, {"reps": 5, "scale": 1},
                                    __doc__.split("\n")[0])
    bench, override = os.path.abspath(bench), os.path.abspath(override)
    scale = opts["scale"]
    work = {
        "py_objects": [PY, os.path.join(HERE, "python", "objects.py"), str(2 * scale)],
        "pyobj": [bench, "pyobj", str(10 * scale)],
        "xthread": [bench, "xthread", str(10 * scale)],
    }
    intervals = [None, "10", "1"]
    tmp = tempfile.mkdtemp(prefix="soma-sampling-")
    print(f"# sampling cost: median wall seconds of {opts['reps']} alternating runs under "
          f"the override; ratio = sampled / not sampled (1.00: no cost)")
    print(f"{'workload':<12}{'no sampling':>13}{'every 10 ms':>13}{'ratio':>7}"
          f"{'every 1 ms':>13}{'ratio':>7}{'samples/s':>11}")
    for name, cmd in work.items():
        times = {i: [] for i in intervals}
        nsamples = 0
        for _ in range(opts["reps"]):
            for i in intervals:
                env = dict(os.environ, LD_PRELOAD=override, PYTHONMALLOC="malloc")
                env.pop("SOMA_STATS_INTERVAL_MS", None)
                if i is not None:
                    env["SOMA_STATS_INTERVAL_MS"] = i
                    env["SOMA_STATS_FILE"] = os.path.join(tmp, "s.%p")
                start = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                times[i].append(time.perf_counter() - start)
                if i == "1":
                    for f in os.listdir(tmp):
                        with open(os.path.join(tmp, f)) as fh:
                            nsamples += sum(1 for _ in fh)
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
        m = {i: statistics.median(v) for i, v in times.items()}
        rate = nsamples / sum(times["1"]) if times["1"] else 0
        print(f"{name:<12}{m[None]:>13.3f}{m['10']:>13.3f}{m['10'] / m[None]:>7.2f}"
              f"{m['1']:>13.3f}{m['1'] / m[None]:>7.2f}{rate:>11.0f}", flush=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
