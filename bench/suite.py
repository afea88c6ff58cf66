#!/usr/bin/env python3
"""bench/suite.py: the benchmark suite, every allocator side by side, in one table.

usage: suite.py SOMA_OVERRIDE_SO BENCH_SMALL MB_BUILD [--reps N] [--only a,b] [--quick]
                [--against NAME=OTHER_SOMA_SO ...]

Workloads, each optional (a line says which are left out and why):
  - the mimalloc-bench programs, built out of tree in MB_BUILD from
    ../shared/third_party/mimalloc-bench (the commands its README lists; a
    few arguments changed so that every run takes a second or more on a
    2-core machine without making the whole suite too long: see SUITE);
  - Debian's programs when installed: z3 and ruby on the suite's inputs,
    lua5.4 (bench/lua/churn.lua), rocksdb's db_bench fillrandom,
    redis-benchmark against redis-server (the server runs under the
    allocator);
  - the Python programs of bench/python (python3 with PYTHONMALLOC=malloc
    under each allocator, and with its own pymalloc as one more column);
  - soma's own workloads (BENCH_SMALL, bench/bench_small.c).
Allocators: glibc (nothing preloaded), jemalloc, mimalloc, tcmalloc and
soma, all by LD_PRELOAD (bench/peers.py); the order rotates every
repetition.  For each workload: the median of REPS runs of wall time (for
larson and xmalloc-test, the time they print themselves: their primary
metric), peak RSS (wait4 of the program, through /usr/bin/time), soma's
ratio to the best peer and which peer that is; then geometric means over
the suite of each allocator's time and RSS against glibc's.  --against
runs soma and another build of it alone (no peers, no pymalloc column),
and the geometric means are against that build: the hardening's cost on
the suite is --against unhardened=build/bench/libsoma-override-unhardened.so.
Given more than once, every build runs in the same rotation, and the
geometric means are against the first.
A measurement, never a pass/fail test: it stops only when a program fails.
"""
import argparse
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = os.path.normpath(os.path.join(ROOT, "..", "shared", "third_party", "mimalloc-bench", "bench"))
from peers import allocators  # noqa: E402

PROCS = os.cpu_count() or 2
TIMEBIN = "/usr/bin/time"


def suite(mb, small, tmp):
    """name -> (group, command, options): group is mb, program, python or soma;
    options: stdin (a path), metric (a regex for a time the program
    prints), needs (a path that must exist), setup (a function run before
    each run), redis (run it as redis-benchmark against redis-server)."""
    p = str(PROCS)
    x = lambda name: os.path.join(mb, name)
    w = {
        # The mimalloc-bench commands (its README); changed arguments say why.
        "cfrac": ("mb", [x("cfrac"), "17545186520507317056371138836327483792789528"], {}),
        "espresso": ("mb", [x("espresso"), os.path.join(MB, "espresso", "largest.espresso")], {}),
        "barnes": ("mb", [x("barnes")], {"stdin": os.path.join(MB, "barnes", "input")}),
        "alloc-test1": ("mb", [x("alloc-test"), "1"], {}),
        "alloc-testN": ("mb", [x("alloc-test"), p], {}),
        # larson runs for a fixed time (first argument): 3 s, not upstream's 5,
        # to keep the suite's length; its primary metric is the relative time
        # it prints (lower is better), from its throughput.
        "larsonN": ("mb", [x("larson"), "3", "8", "1000", "5000", "100", "4141", p],
                    {"metric": r"relative time: ([0-9.]+)s"}),
        "larsonN-sized": ("mb", [x("larson-sized"), "3", "8", "1000", "5000", "100", "4141", p],
                          {"metric": r"relative time: ([0-9.]+)s"}),
        # xmalloc-test: 3 s, not 5; its primary metric is the rtime it prints.
        "xmalloc-testN": ("mb", [x("xmalloc-test"), "-w", p, "-t", "3", "-s", "64"],
                          {"metric": r"rtime: ([0-9.]+)"}),
        # cache-thrash and cache-scratch: upstream's 1-thread runs take ~1.3 s
        # here; the N-thread runs split the same work over N threads, so they
        # get N times the repetitions to last as long.
        "cache-thrash1": ("mb", [x("cache-thrash"), "1", "1000", "1", "2000000", p], {}),
        "cache-thrashN": ("mb", [x("cache-thrash"), p, "1000", "1", str(2000000 * PROCS), p], {}),
        "cache-scratch1": ("mb", [x("cache-scratch"), "1", "1000", "1", "2000000", p], {}),
        "cache-scratchN": ("mb", [x("cache-scratch"), p, "1000", "1", str(2000000 * PROCS), p], {}),
        "malloc-large": ("mb", [x("malloc-large")], {}),
        # mleak10 takes 0.2 s upstream ("mleak 5"): its figure is the RSS.
        "mleak10": ("mb", [x("mleak"), "5"], {}),
        "mleak100": ("mb", [x("mleak"), "50"], {}),
        # Debian's programs.
        "z3": ("program", ["z3", "-smt2", os.path.join(MB, "z3", "test1.smt2")], {"needs": "/usr/bin/z3"}),
        "rbstress1": ("program", ["ruby", os.path.join(MB, "rbstress", "stress_mem.rb"), "1"],
                      {"needs": "/usr/bin/ruby"}),
        "rbstressN": ("program", ["ruby", os.path.join(MB, "rbstress", "stress_mem.rb"), p],
                      {"needs": "/usr/bin/ruby"}),
        "lua": ("program", ["lua5.4", os.path.join(HERE, "lua", "churn.lua"), "2"],
                {"needs": "/usr/bin/lua5.4"}),
        # db_bench's own default is 1M keys (5 s here): 400k.
        "rocksdb": ("program", ["db_bench", "--benchmarks=fillrandom", "--num=400000",
                                "--db=" + os.path.join(tmp, "rocksdb")],
                    {"needs": "/usr/bin/db_bench",
                     "setup": lambda: shutil.rmtree(os.path.join(tmp, "rocksdb"), ignore_errors=True)}),
        "redis": ("program", ["redis-benchmark", "-q", "-r", "1000000", "-n", "400000", "-P", "8",
                              "lpush", "a", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                              "lrange", "a", "1", "10"],
                  {"needs": "/usr/bin/redis-server", "redis": True}),
    }
    for name in ("objects", "json_text", "dicts"):
        w["py_" + name] = ("python", ["/usr/bin/python3", os.path.join(HERE, "python", name + ".py"), "3"],
                           {})
    # soma's workloads, each scaled to a second or more under soma, the
    # fastest here on most of them (runs shorter than that move by more
    # than what they measure: xthread at 0.3 s read 0.27 to 0.89 s for the
    # same library).
    for name, scale in (("lifo1", 5), ("lifo2", 5), ("fifo1", 5), ("fifo2", 4.5), ("mixed1", 4),
                        ("mixed2", 3.5), ("xthread", 10), ("tree", 2.5), ("strings", 2),
                        ("pyobj", 24), ("random1", 1.5), ("random2", 3), ("random1k8", 1.5),
                        ("prodcons", 1), ("larsonish", 1), ("churn", 1.5), ("big", 1),
                        ("huge", 4)):
        w[name] = ("soma", [small, name, str(scale)], {})
    return w


# A few minutes: one repetition of these (make bench-quick).
QUICK = ["alloc-test1", "larsonN", "larsonN-sized", "xmalloc-testN", "cache-scratchN", "malloc-large",
         "z3", "py_objects", "random1", "prodcons", "larsonish", "churn", "big"]


def environ(extra):
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "PYTHONMALLOC"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_plain(cmd, opts, env, tmp):
    """(seconds, peak RSS KiB, stdout) of one run."""
    out = os.path.join(tmp, "time.txt")
    if "setup" in opts:
        opts["setup"]()
    stdin = open(opts["stdin"]) if "stdin" in opts else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.run([TIMEBIN, "-f", "%e %M", "-o", out] + cmd, env=env, stdin=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    wall = time.perf_counter() - start
    if stdin is not subprocess.DEVNULL:
        stdin.close()
    if proc.returncode != 0:
        sys.exit(f"suite.py: {' '.join(cmd)} failed (LD_PRELOAD={env.get('LD_PRELOAD', '')}):\n"
                 f"{proc.stderr[-2000:]}")
    rss = int(open(out).read().split()[-1])
    if "metric" in opts:
        m = re.search(opts["metric"], proc.stdout + proc.stderr)
        if not m:
            sys.exit(f"suite.py: {cmd[0]} printed no {opts['metric']}")
        wall = float(m.group(1))
    return wall, rss


def run_redis(cmd, env, tmp):
    """redis-server under the allocator, driven by redis-benchmark (not
    preloaded): the benchmark's wall time, the server's peak RSS."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(tmp, "redis-time.txt")
    server = subprocess.Popen([TIMEBIN, "-f", "%e %M", "-o", out, "redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp)
    plain = environ({})
    for _ in range(200):
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                              env=plain, stdin=subprocess.DEVNULL)
        if ping.stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    start = time.perf_counter()
    proc = subprocess.run(cmd[:1] + ["-p", str(port)] + cmd[1:], capture_output=True, text=True, env=plain,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, env=plain,
                   stdin=subprocess.DEVNULL)
    server.wait()
    if proc.returncode != 0 or server.returncode != 0:
        sys.exit(f"suite.py: redis failed (LD_PRELOAD={env.get('LD_PRELOAD', '')}): {proc.stderr[-500:]}")
    return wall, int(open(out).read().split()[-1])


def geomean(xs):
    return math.exp(sum(math.log(v) for v in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("soma")
    ap.add_argument("bench_small")
    ap.add_argument("mb_build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true", help="one repetition of a subset")
    ap.add_argument("--against", action="append", default=[],
                    help="NAME=PATH: soma against that other build of soma alone, no peers "
                         "(unhardened=build/bench/libsoma-override-unhardened.so: the "
                         "hardening's cost on the suite); given again, more builds in the "
                         "same runs, the ratios against the first")
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    if args.against:
        allocs = []
        for a in args.against:
            name, eq, path = a.partition("=")
            if not eq or not name or not path or name in ("soma", "pymalloc") or \
                    name in (n for n, _ in allocs):
                sys.exit(f"suite.py: --against {a}: NAME=PATH, a name of its own "
                         "(not soma or pymalloc)")
            allocs.append((name, os.path.abspath(path)))
        allocs.append(("soma", os.path.abspath(args.soma)))
    else:
        allocs = allocators(os.path.abspath(args.soma))
    names = [n for n, _ in allocs]
    peers = [n for n in names if n != "soma"]
    tmp = tempfile.mkdtemp(prefix="soma-suite-")
    work = suite(os.path.abspath(args.mb_build), os.path.abspath(args.bench_small), tmp)
    only = args.only.split(",") if args.only else (QUICK if args.quick else list(work))
    unknown = [w for w in only if w not in work]
    if unknown:
        sys.exit(f"suite.py: unknown workloads {unknown}; known: {', '.join(work)}")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"# the suite: {reps} alternating run(s) each, medians; {PROCS} CPUs; "
          f"{os.uname().release}; soma at {commit}", flush=True)
    if "redis" in only:
        print("# redis: Debian's redis-server is linked with jemalloc, so its glibc column is jemalloc",
              flush=True)
    rows = []
    try:
        for w in only:
            group, cmd, opts = work[w]
            exe = cmd[0] if os.path.isabs(cmd[0]) else shutil.which(cmd[0])
            need = opts.get("needs", exe)
            if not exe or not os.path.exists(need) or (group == "mb" and not os.path.exists(exe)):
                print(f"# {w}: {need or cmd[0]} not there, left out", flush=True)
                continue
            configs = [(n, {"LD_PRELOAD": p} if p else {}) for n, p in allocs]
            if group == "python":
                configs = [(n, {"PYTHONMALLOC": "malloc", **e}) for n, e in configs]
                if not args.against:
                    configs.append(("pymalloc", {}))
            times = {n: [] for n, _ in configs}
            rss = {n: [] for n, _ in configs}
            for r in range(reps):
                order = configs[r % len(configs):] + configs[:r % len(configs)]
                for n, extra in order:
                    env = environ(extra)
                    if opts.get("redis"):
                        t, m = run_redis(cmd, env, tmp)
                    else:
                        t, m = run_plain(cmd, opts, env, tmp)
                    times[n].append(t)
                    rss[n].append(m)
            mt = {n: statistics.median(v) for n, v in times.items()}
            mr = {n: statistics.median(v) / 1024 for n, v in rss.items()}
            rows.append((w, group, mt, mr))
            print(f"# {w} done: " + " ".join(f"{n} {mt[n]:.2f}" for n in mt), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, names, peers)


def best_peer(d, peers):
    cands = [n for n in peers + ["pymalloc"] if n in d]
    return min(cands, key=lambda n: d[n])


def report(rows, names, peers):
    cols = names + (["pymalloc"] if any("pymalloc" in r[2] for r in rows) else [])
    width = {n: max(10, len(n) + 1) for n in cols}  # --against's names may be long
    base = "glibc" if "glibc" in names else names[0]
    lw = max(15, len("geomean/" + base) + 1)
    for title, idx, fmt in (("time (seconds, or the program's own time for larson and xmalloc-test)",
                             2, "%9.3f"),
                            ("peak RSS (MiB)", 3, "%9.1f")):
        print(f"\n## {title}; soma / best peer")
        print("workload".ljust(lw) + "".join(n.rjust(width[n]) for n in cols) + f"{'soma/best':>11}  best")
        for w, _, *ds in rows:
            d = ds[idx - 2]
            b = best_peer(d, peers)
            cells = "".join((fmt % d[n] if n in d else "-").rjust(width[n]) for n in cols)
            print(f"{w.ljust(lw)}{cells}{d['soma'] / d[b]:11.2f}  {b}")
        # geometric means against glibc (or --against's build): every row,
        # then each group's: the field's suite and programs, CPython's, soma's own
        for label, sel in (("geomean/" + base, lambda g: True),
                           ("  mb+programs", lambda g: g in ("mb", "program")),
                           ("  python", lambda g: g == "python"),
                           ("  soma's own", lambda g: g == "soma")):
            chosen = [r for r in rows if sel(r[1])]
            if not chosen:
                continue
            gm = {n: geomean([r[idx][n] / r[idx][base] for r in chosen]) for n in names}
            b = min(peers, key=lambda n: gm[n])
            print(label.ljust(lw) + "".join(f"{gm[n]:9.3f}".rjust(width[n]) for n in names)
                  + ("-".rjust(width["pymalloc"]) if len(cols) > len(names) else "")
                  + f"{gm['soma'] / gm[b]:11.2f}  {b}  ({len(chosen)} workloads)")


if __name__ == "__main__":
    main()
