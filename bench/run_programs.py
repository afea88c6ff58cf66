#!/usr/bin/env python3
"""bench/run_programs.py: real programs under every allocator, side by side.

usage: run_programs.py SOMA_OVERRIDE_SO [--reps N] [--scale N] [--only a,b]

Workloads: three Python programs (bench/python/*.py) run by Debian's
python3, a sqlite3 script, a gcc compile, and redis: redis-server under the
allocator, driven by redis-benchmark (timed: the benchmark's wall time; peak
RSS: the server's).  Allocators: for Python,
CPython's own pymalloc (the default, nothing preloaded), then glibc
(PYTHONMALLOC=malloc), jemalloc, mimalloc, tcmalloc and soma (each
PYTHONMALLOC=malloc and LD_PRELOAD); the other programs have no pymalloc
column.  Each run is timed by /usr/bin/time (wall seconds, and peak RSS from
wait4, which the small time process hardly inflates), REPS times in an order
that rotates every repetition; medians; soma's ratio against each.  A
measurement, never a pass/fail test; it stops only if a program fails or
prints a different result under some allocator.
"""
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
from peers import allocators, parse

PY = "/usr/bin/python3"
SQL = """
create table t(id integer primary key, g integer, name text, v real);
with recursive n(i) as (select 1 union all select i + 1 from n where i < {rows})
insert into t select i, i % 100, 'name-' || i, i * 0.5 from n;
create index tg on t(g);
select count(*), sum(id), count(distinct g) from t;
update t set v = v * 2 where g < 50;
select g, count(*), sum(v) from t group by g order by g limit 3;
delete from t where g % 3 = 0;
select count(*), sum(length(name)) from t;
"""


def workloads(scale, tmp):
    py = lambda name: ("python", [PY, os.path.join(HERE, "python", name + ".py"), str(scale)], None)
    sql = SQL.format(rows=300000 * scale)
    src = os.path.join(HERE, "bench_small.c")
    gcc = ["sh", "-c", f"for i in $(seq {2 * scale}); do gcc -O2 -c -o {tmp}/b.o {src} || exit 1; done"]
    return {
        "py_objects": py("objects"),
        "py_json": py("json_text"),
        "py_dicts": py("dicts"),
        "sqlite3": ("plain", ["sqlite3", ":memory:"], sql),
        "gcc": ("plain", gcc, None),
        "redis": ("redis", ["redis-benchmark", "-q", "-n", str(200000 * scale), "-P", "16",
                            "-t", "set,get,incr,lpush,lpop,sadd,hset"], None),
    }


def run_redis(bench_cmd, env_extra, tmp):
    """redis-server under the allocator; the time of one redis-benchmark run."""
    import socket, time
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(tmp, "redis-time.txt")
    server = subprocess.Popen(["/usr/bin/time", "-f", "%e %M", "-o", out, "redis-server",
                               "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    start = time.perf_counter()
    proc = subprocess.run(bench_cmd + ["-p", str(port)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    dbsize = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True,
                            text=True).stdout.strip()
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
    server.wait()
    if proc.returncode != 0 or server.returncode != 0:
        sys.exit(f"run_programs.py: redis failed under {env_extra}: {proc.stderr[-500:]}")
    rss = int(open(out).read().split()[-1])
    return wall, rss, f"dbsize {dbsize}\n"


def run_once(cmd, env_extra, stdin_text, tmp):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("PYTHONMALLOC", None)
    env.update(env_extra)
    out = os.path.join(tmp, "time.txt")
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", out] + cmd, env=env,
                          input=stdin_text, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"run_programs.py: {' '.join(cmd)} failed under {env_extra}:\n{proc.stderr[-2000:]}")
    wall, rss = open(out).read().split()[-2:]
    return float(wall), int(rss), proc.stdout


def main():
    (soma,), opts = parse(sys.argv[1:], 1, {"reps": 3, "scale": 1, "only": None}, __doc__)
    reps, scale, only = opts["reps"], opts["scale"], opts["only"]
    peers = allocators(os.path.abspath(soma))
    names = ["pymalloc"] + [n for n, _ in peers]
    others = [n for n in names if n != "soma"]
    print(f"# {reps} alternating runs each, medians; scale {scale}; {os.cpu_count()} CPUs; "
          f"{os.uname().release}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, (kind, cmd, stdin_text) in workloads(scale, tmp).items():
            if only and w not in only:
                continue
            configs = []
            if kind == "redis" and not os.path.exists("/usr/bin/redis-server"):
                print("# redis-server not installed: redis left out")
                continue
            if kind == "python":
                configs.append(("pymalloc", {}))
                configs += [(n, {"PYTHONMALLOC": "malloc", **({"LD_PRELOAD": p} if p else {})})
                            for n, p in peers]
            else:
                configs += [(n, {"LD_PRELOAD": p} if p else {}) for n, p in peers]
            times = {n: [] for n, _ in configs}
            rss = {n: [] for n, _ in configs}
            outputs = {}
            for r in range(reps):
                order = configs[r % len(configs):] + configs[:r % len(configs)]
                for n, env in order:
                    if kind == "redis":
                        t, m, out = run_redis(cmd, env, tmp)
                    else:
                        t, m, out = run_once(cmd, env, stdin_text, tmp)
                    times[n].append(t)
                    rss[n].append(m)
                    outputs.setdefault(out, []).append(n)
            if len(outputs) != 1:
                sys.exit(f"run_programs.py: {w} printed different results: {list(outputs.values())}")
            rows.append((w, {n: statistics.median(v) for n, v in times.items()},
                         {n: statistics.median(v) / 1024 for n, v in rss.items()}))
            print(f"# {w} done", flush=True)

    def cell(d, n, fmt):
        return fmt % d[n] if n in d else f"{'-':>{len(fmt % 0)}}"

    def ratio(d, n):
        return f"{d['soma'] / d[n]:9.2f}" if n in d else f"{'-':>9}"

    for title, idx, fmt in (("time (seconds; soma / other)", 1, "%10.2f"),
                            ("peak RSS (MiB; soma / other)", 2, "%10.1f")):
        print(f"\n## {title}")
        print(f"{'workload':11}" + "".join(f"{n:>10}" for n in names) + "  "
              + " ".join(f"{'/' + n:>9}" for n in others))
        for row in rows:
            d = row[idx]
            print(f"{row[0]:11}" + "".join(cell(d, n, fmt) for n in names) + "  "
                  + " ".join(ratio(d, n) for n in others))


if __name__ == "__main__":
    main()
