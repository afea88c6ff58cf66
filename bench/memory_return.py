#!/usr/bin/env python3
"""bench/memory_return.py: does freed memory go back to the operating system?

usage: memory_return.py SOMA_OVERRIDE_SO FRAG_BIN [--reps N]

Two programs, under glibc, jemalloc, mimalloc, tcmalloc and soma (Debian's
peers and soma's override, preloaded by path: bench/peers.py), REPS times
each in an order that rotates every repetition; medians.

frag (bench/frag.c): 96 MiB of 64-byte blocks, all but one in 4,096 freed,
then 3 seconds of a little allocation.  Its resident set is read from
/proc/PID/status every 20 ms while it runs.  Per allocator: the peak (VmHWM),
the end (the last sample within the 3 seconds), end / peak, and how long
after the frees the resident set first fell to 15% of the peak or below
("never": not within the 3 seconds; the median counts a never as longest).
The peak includes frag's pointer array (12 MiB, unmapped after the frees),
so an allocator that returns nothing ends near 89% of it, one that returns
all but the pages of the kept blocks near a few percent.

build_drop (bench/python/build_drop.py): Python builds about 240 MiB of
small objects, drops them and carries on 3 seconds; it reports its own
resident set before the build, at the peak, right after the drop and at the
end.  Under CPython's own pymalloc (nothing preloaded), then with
PYTHONMALLOC=malloc under each allocator.

Nothing is set in the children's environment but LD_PRELOAD and
PYTHONMALLOC: SOMA_* options (soma's override reads them) are removed, so
that soma runs with its defaults.  A measurement, never a pass/fail test; it
stops only if a program fails or build_drop's result differs.
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from peers import allocators, parse

PY = "/usr/bin/python3"
BUILD_DROP = os.path.join(HERE, "python", "build_drop.py")
SECONDS = 3         # how long both programs carry on after the drop
FRAG_MIB = 96
SAMPLE_S = 0.020    # frag's resident set is sampled this often
RETURNED = 0.15     # "returned": the resident set at or below this share of the peak


def clean_env(extra):
    """The environment without any preload, PYTHONMALLOC or SOMA_* option,
    plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "PYTHONMALLOC") and not k.startswith("SOMA_")}
    env.update(extra)
    return env


def read_status(pid):
    """(VmRSS, VmHWM) in KiB, or None once the process has gone (a zombie
    has no such lines)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith("Vm"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "VmRSS" not in fields or "VmHWM" not in fields:
        return None
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run_frag(frag, env):
    """One run: (peak KiB, end KiB, seconds from the frees to the first
    sample at or below RETURNED of the peak, or None)."""
    proc = subprocess.Popen([frag, str(SECONDS), str(FRAG_MIB)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (monotonic seconds, VmRSS, VmHWM)
    due = time.monotonic()
    while proc.poll() is None:
        t = time.monotonic()
        st = read_status(proc.pid)
        if st is not None:
            samples.append((t,) + st)
        due += SAMPLE_S
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            due = time.monotonic()  # late (a busy machine): no burst to catch up
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"frag failed ({proc.returncode}): {err.strip()}")
    fields = dict(kv.split("=") for kv in out.split())
    freed = float(fields["freed"])
    peak = max(s[2] for s in samples)
    # The end: the last sample within frag's own SECONDS after the frees, not
    # one taken while the process was exiting.
    within = [s for s in samples if s[0] <= freed + SECONDS]
    end = within[-1][1]
    back = next((s[0] - freed for s in samples if s[0] >= freed and s[1] <= RETURNED * peak),
                None)
    return peak, end, back


def run_build_drop(env):
    proc = subprocess.run([PY, BUILD_DROP, str(SECONDS)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"build_drop.py failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def mib(kib):
    return f"{kib / 1024:.1f}"


def frag_table(frag, allocs, reps):
    runs = {n: [] for n, _ in allocs}
    for r in range(reps):
        order = allocs[r % len(allocs):] + allocs[:r % len(allocs)]
        for n, lib in order:
            runs[n].append(run_frag(frag, clean_env({"LD_PRELOAD": lib} if lib else {})))
    print(f"\n## frag: {FRAG_MIB} MiB of 64-byte blocks, all but 1 in 4096 freed, then "
          f"{SECONDS} s of a little allocation; RSS sampled every {SAMPLE_S * 1000:.0f} ms; "
          f"medians of {reps}")
    print(f"{'allocator':10} {'peak MiB':>9} {'end MiB':>8} {'end/peak':>9} "
          f"{'to <=' + format(RETURNED, '.0%') + ' s':>11} {'reached':>8}")
    for n, _ in allocs:
        peak = statistics.median(p for p, _, _ in runs[n])
        end = statistics.median(e for _, e, _ in runs[n])
        ratio = statistics.median(e / p for p, e, _ in runs[n])
        backs = [b for _, _, b in runs[n]]
        back = statistics.median(float("inf") if b is None else b for b in backs)
        reached = sum(b is not None for b in backs)
        print(f"{n:10} {mib(peak):>9} {mib(end):>8} {ratio:9.1%} "
              f"{'never' if back == float('inf') else format(back, '.2f'):>11} "
              f"{f'{reached}/{reps}':>8}", flush=True)


def build_drop_table(allocs, reps):
    configs = [("pymalloc", {})] + [
        (n, {"PYTHONMALLOC": "malloc", **({"LD_PRELOAD": lib} if lib else {})})
        for n, lib in allocs]
    runs = {n: [] for n, _ in configs}
    results = set()
    for r in range(reps):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for n, extra in order:
            rec = run_build_drop(clean_env(extra))
            results.add(rec["result"])
            if len(results) > 1:
                sys.exit(f"build_drop.py's result differs under {n}: {sorted(results)}")
            runs[n].append(rec)
    print(f"\n## build_drop: Python builds ~240 MiB of small objects, drops them, carries on "
          f"{SECONDS} s; its own RSS; medians of {reps}")
    print(f"{'allocator':10} {'pre MiB':>8} {'peak MiB':>9} {'dropped MiB':>12} {'end MiB':>8} "
          f"{'end/pre':>8} {'end/peak':>9}")
    for n, _ in configs:
        med = lambda key: statistics.median(rec[key] for rec in runs[n])
        end_pre = statistics.median(rec["end_kib"] / rec["pre_kib"] for rec in runs[n])
        end_peak = statistics.median(rec["end_kib"] / rec["peak_kib"] for rec in runs[n])
        print(f"{n:10} {mib(med('pre_kib')):>8} {mib(med('peak_kib')):>9} "
              f"{mib(med('dropped_kib')):>12} {mib(med('end_kib')):>8} {end_pre:8.2f} "
              f"{end_peak:9.1%}", flush=True)


def main():
    (soma, frag), opts = parse(sys.argv[1:], 2, {"reps": 3}, __doc__.split("\n")[2])
    soma, frag = os.path.abspath(soma), os.path.abspath(frag)
    allocs = allocators(soma)
    frag_table(frag, allocs, opts["reps"])
    build_drop_table(allocs, opts["reps"])


if __name__ == "__main__":
    main()
