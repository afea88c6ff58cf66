"""test_snapshots.py BUILD_DIR [SANITIZE]: the JSON snapshots and the tools that read
them, against the schema (python3-jsonschema, a real validator) and against
figures known by hand.

  - json_probe's snapshots: exact class counts, medium, large, the explicit
    heap, the registered cache; the arena detail adds up to the figures;
    after everything is freed, the arenas are reclaimed and their slots
    listed;
  - samples (SOMA_STATS_INTERVAL_MS) while json_probe holds 1000 blocks:
    every sample shows exactly those, so the sampler allocated nothing;
  - SOMA_STATS_FORMAT=json at exit in python3 under the override, and
    soma run --format json: valid streams;
  - soma diff of the hand-built snapshots in tests/stats/data prints exactly
    diff_expected.txt (the same text test_diff gets from the C function);
  - soma map: 1 arena, a real snapshot, and 1200 arenas (1000 drawn, the
    rest summarised, and the page says so); the SVG is well-formed XML;
  - pools emptied in arenas that stay, their pages given back (json_probe
    returned): "returned" counts them, the detail marks exactly those
    pools [class, 0, 1], soma diff shows the change and soma map draws
    them in their own style, with their tooltips.

SANITIZE (the build's -fsanitize= list, empty for none): the sanitizers
refuse a preloaded allocator, so a sanitized build skips python3 under the
override and soma run.
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import (ROOT, check, done, importable, need, snapshots, validate_all,
                     validator)

BUILD = os.path.abspath(sys.argv[1])
SOMA = os.path.join(BUILD, "soma")
PROBE = os.path.join(BUILD, "tests", "json_probe")
OVERRIDE = os.path.join(BUILD, "libsoma-override.so")
PY = "/usr/bin/python3"
PRELOAD = len(sys.argv) < 3 or sys.argv[2] == ""

if not need(["python3-jsonschema"], importable("jsonschema")):
    print("python3-jsonschema is missing and cannot be installed: skipped")
    sys.exit(77)
V = validator()
tmp = tempfile.mkdtemp(prefix="soma-snap-")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kw)


def consistent(s, where):
    """The figures add up, and the detail (if any) matches them."""
    lines = ["bytes_in_allocated_blocks", "bytes_in_available_blocks", "unused_pool_bytes",
             "bytes_lost_to_pool_headers", "bytes_lost_to_quantization",
             "bytes_lost_to_arena_alignment"]
    check(sum(s[k] for k in lines) == s["total"] == s["arena_bytes"],
          f"{where}: the six byte lines add up to Total == arena bytes")
    m = s["medium"]
    check(sum(m[k] for k in lines[:-1]) == m["total"] == m["arena_bytes"],
          f"{where}: the medium byte lines add up to its Total")
    r = s["returned"]
    check(r["pool_bytes"] == r["pools"] * s["pool_size"] <= s["unused_pool_bytes"] and
          r["medium_pool_bytes"] == r["medium_pools"] * s["pool_size"] <= m["unused_pool_bytes"],
          f"{where}: returned pools' bytes are a part of the unused pools' bytes")
    check(r["pools_total"] >= r["pools"] + r["medium_pools"],
          f"{where}: the pools returned now were returned in the total")
    check(sum(c["blocks_in_use"] * c["size"] for c in s["classes"])
          == s["bytes_in_allocated_blocks"], f"{where}: class table matches allocated bytes")
    if "detail" not in s:
        return
    d = s["detail"]
    kinds = [a["kind"] for a in d["arenas"]]
    check(kinds.count("small") == s["arenas_current"], f"{where}: one detail row per small arena")
    check(kinds.count("medium") == m["arenas_current"], f"{where}: one per medium arena")
    empty = {"small": 0, "medium": 0}
    for a in d["arenas"]:
        empty[a["kind"]] += all(p[1] == 0 for p in a["pools"])
    check(empty["small"] == s["arenas_empty"] and empty["medium"] == m["arenas_empty"],
          f"{where}: arenas empty are those of the detail with no pool in use")
    used, pools, unused = {}, {}, {"small": 0, "medium": 0}
    returned = {"small": 0, "medium": 0}
    for a in d["arenas"]:
        check(len(a["pools"]) + a["fresh_pools"] == d["pools_per_arena"],
              f"{where}: arena {a['address']} has pools_per_arena pools")
        unused[a["kind"]] += a["fresh_pools"]
        for p in a["pools"]:
            cls, n = p[0], p[1]
            returned[a["kind"]] += len(p) == 3
            if n == 0:
                unused[a["kind"]] += 1
                continue
            used[cls] = used.get(cls, 0) + n
            pools[cls] = pools.get(cls, 0) + 1
    for c in s["classes"] + m["classes"]:
        check(used.get(c["class"], 0) == c["blocks_in_use"] and
              pools.get(c["class"], 0) == c["num_pools"],
              f"{where}: class {c['class']}: the detail's pools hold its blocks in use")
    check(unused["small"] == s["unused_pools"] and unused["medium"] == m["unused_pools"],
          f"{where}: empty and never-carved pools of the detail are the unused pools")
    r = s["returned"]
    check(returned["small"] == r["pools"] and returned["medium"] == r["medium_pools"],
          f"{where}: the pools the detail marks returned are the returned ones")


# ---- json_probe: figures known by hand ----
out = os.path.join(tmp, "probe.json")
r = run([PROBE, "snapshots", out])
check(r.returncode == 0, f"json_probe snapshots ran: {r.stderr}")
values = snapshots(open(out).read())
check(len(values) == 4, "json_probe wrote four snapshots")
validate_all(V, values, "json_probe")
proc, heap, plain, freed = values
check(proc["scope"] == "process" and proc["reason"] == "request", "process snapshot's scope")
check(proc["pid"] > 0 and "json_probe" in proc["program"], "pid and program recorded")
check(proc["classes"][2]["blocks_in_use"] == 1000 and proc["classes"][2]["size"] == 48,
      "class 2 holds the 1000 blocks of 48 bytes")
check(proc["classes"][3]["blocks_in_use"] == 50, "class 3 holds the heap's 50 blocks of 64")
check(sum(c["blocks_in_use"] for c in proc["classes"]) == 1050, "no other small block")
big = [c for c in proc["medium"]["classes"] if c["blocks_in_use"]]
check(len(big) == 1 and big[0]["blocks_in_use"] == 10 and big[0]["size"] >= 1500,
      "one medium class holds the 10 blocks of 1500 bytes")
check({k: proc["large"][k] for k in ("blocks_allocated_total", "blocks_in_use", "bytes_in_use")} ==
      {"blocks_allocated_total": 2, "blocks_in_use": 2, "bytes_in_use": 200000},
      "two large blocks of 100000 bytes")
# Each is a mapping of its own, 25 pages; nothing freed yet, nothing cached.
check(proc["large"]["bytes_mapped"] == 2 * 102400 and proc["large"]["cached_blocks"] == 0 and
      proc["large"]["cached_bytes"] == 0 and proc["large"]["maps_made_total"] == 2 and
      proc["large"]["maps_reused_total"] == 0, "the large blocks' mappings")
# Freed, with no decay: the most recent mapping stays cached, the other goes.
check(freed["large"]["cached_blocks"] == 1 and freed["large"]["cached_bytes"] == 102400 and
      freed["large"]["bytes_mapped"] == 102400, "after freeing: one large mapping cached")
check(proc["types"] == [{"name": "Probe", "elem_size": 40, "count": 7}], "the registered cache")
check(proc["options"]["arena_decay_ms"] == 0 and proc["build"]["override"] is False,
      "options in force: the library's decay, not the override")
heap_kinds = {a["heap_kind"] for a in proc["detail"]["arenas"]}
check(heap_kinds == {"thread", "explicit"}, "arenas of the thread's heap and of the explicit one")
consistent(proc, "process snapshot")
check(heap["scope"] == "heap" and heap["classes"][3]["blocks_in_use"] == 50 and
      sum(c["blocks_in_use"] for c in heap["classes"]) == 50, "the heap's snapshot: its 50 blocks")
check(all(a["heap_kind"] == "explicit" for a in heap["detail"]["arenas"]) and
      heap["detail"]["reclaimed_slots"] == [], "the heap's detail: its arenas only")
consistent(heap, "heap snapshot")
check(plain["scope"] == "snapshot" and "detail" not in plain and
      plain["classes"] == proc["classes"], "soma_stats_fprint_json: the figures, no detail")
# The thread's heap keeps one empty arena of each kind for reuse (CPython's
# rule); the destroyed heap's arena is reclaimed.
check(sum(c["blocks_in_use"] for c in freed["classes"] + freed["medium"]["classes"]) == 0 and
      freed["large"]["blocks_in_use"] == 0, "after freeing: no block in use")
check(freed["arenas_current"] == 1 and freed["medium"]["arenas_current"] == 1 and
      freed["arenas_empty"] == 1 and freed["medium"]["arenas_empty"] == 1 and
      proc["arenas_empty"] == 0 and
      freed["arenas_reclaimed"] == 1 and freed["unused_pools"] == 64 and
      all(p[1] == 0 for a in freed["detail"]["arenas"] for p in a["pools"]),
      "after freeing: one empty arena of each kind kept, the heap's reclaimed")
check(len(freed["detail"]["reclaimed_slots"]) == 1, "the reclaimed arena slot is listed")
consistent(freed, "after freeing")

# A command line is any bytes: the JSON stays UTF-8 (U+FFFD for the rest),
# and the map stays well-formed XML.
odd = os.path.join(tmp, "odd.json")
r = subprocess.run([PROBE.encode(), b"snapshots", odd.encode(), b"\xff\xfe<&\"'\xc3"],
                   capture_output=True, timeout=60)
raw = open(odd, "rb").read()
try:
    oddv = snapshots(raw.decode("utf-8"))
except UnicodeDecodeError:
    oddv = []
check(r.returncode == 0 and len(oddv) == 4 and
      oddv[0]["program"].endswith("\ufffd\ufffd<&\"'\ufffd"),
      "bytes that are not UTF-8 in the command line become U+FFFD in the JSON")
validate_all(V, oddv[:1], "odd command line")
odd_svg = os.path.join(tmp, "odd.svg")
r = run([SOMA, "map", odd, "-o", odd_svg])
try:
    ET.parse(odd_svg)
    well_formed = True
except ET.ParseError:
    well_formed = False
check(r.returncode == 0 and well_formed, "its map is well-formed XML")

# ---- samples: the sampler takes figures without allocating ----
sample_file = os.path.join(tmp, "samples.%p")
env = dict(os.environ, SOMA_STATS_INTERVAL_MS="5", SOMA_STATS_FILE=sample_file)
# 600 ms of holding: 120 slots of 5 ms for the 20 samples asked below (a
# sampler that falls behind skips slots: under TSan on a loaded machine)
r = run([PROBE, "hold", "600"], env=env)
files = [f for f in os.listdir(tmp) if f.startswith("samples.")]
check(r.returncode == 0 and len(files) == 1, "json_probe hold wrote one samples file")
samples = snapshots(open(os.path.join(tmp, files[0])).read()) if files else []
validate_all(V, samples, "samples")
check(all(s["reason"] == "sample" and "detail" not in s for s in samples),
      "samples are reason sample, without the detail")
# Samples may fall while the 1000 blocks are being allocated or freed (a
# slow build, TSan's, makes that likely): the counts then rise, stay at
# 1000, and fall, never more.
in_use = [sum(c["blocks_in_use"] for c in s["classes"]) for s in samples]
holding = [s for s, n in zip(samples, in_use) if n == 1000]
check(len(holding) >= 20, f"at least 20 samples while holding ({len(holding)})")
check(all(s["classes"][2]["blocks_in_use"] == 1000 and s["arenas_current"] == 1
          for s in holding), "those show exactly the program's 1000 blocks, in one arena")
top = in_use.index(1000) if 1000 in in_use else 0
rising, falling = in_use[:top + 1], in_use[top:]
check(rising == sorted(rising) and falling == sorted(falling, reverse=True),
      f"blocks in use rise to 1000 and fall back, as the program did ({in_use})")
check(all(n <= 1000 for n in in_use) and all(s["arenas_current"] <= 1 for s in samples),
      "no sample shows more: the sampler has no heap of its own")
env = dict(os.environ, SOMA_STATS_INTERVAL_MS="1", SOMA_STATS_FILE="/nonexistent/dir/s.%p")
r = run([PROBE, "hold", "100"], env=env)
check(r.returncode == 0 and r.stderr.count("cannot write statistics") == 1,
      f"a stats file that cannot be written: one warning, not one per sample ({r.stderr[:200]})")
env = dict(os.environ, SOMA_STATS_INTERVAL_MS="20", SOMA_STATS_FORMAT="text",
           SOMA_SHOW_STATS="1", SOMA_STATS_FILE=os.path.join(tmp, "mixed.%p"))
r = run([PROBE, "hold", "100"], env=env)
mixed = [f for f in os.listdir(tmp) if f.startswith("mixed.")]
values = snapshots(open(os.path.join(tmp, mixed[0])).read()) if mixed else []
check("SOMA_STATS_FORMAT=text ignored" in r.stderr and len(values) >= 3 and
      values[-1]["reason"] == "exit", "with samples, the dumps are JSON too, the exit last")
times = [s["elapsed_ms"] for s in samples]
check(times == sorted(times) and len(samples) >= 20,
      f"samples in time order, every 5 ms or so ({len(samples)} over about 660 ms)")

# ---- python3 under the override, SOMA_STATS_FORMAT=json at exit ----
def preloaded():
    exit_file = os.path.join(tmp, "py.%p")
    env = dict(os.environ, LD_PRELOAD=OVERRIDE, SOMA_SHOW_STATS="1", SOMA_STATS_FORMAT="json",
               SOMA_STATS_FILE=exit_file, PYTHONMALLOC="malloc")
    r = run([PY, "-c", "d = {str(i): [i] * 3 for i in range(100000)}; print(len(d))"], env=env)
    check(r.returncode == 0 and r.stdout.strip() == "100000", "python3 ran under the override")
    files = [f for f in os.listdir(tmp) if f.startswith("py.")]
    values = snapshots(open(os.path.join(tmp, files[0])).read()) if len(files) == 1 else []
    validate_all(V, values, "python3 exit")
    check(len(values) == 1 and values[0]["reason"] == "exit" and values[0]["build"]["override"],
          "one exit snapshot from the override")
    if values:
        consistent(values[0], "python3 at exit")
        check(values[0]["options"]["stats_format"] == "json" and
              values[0]["options"]["arena_decay_ms"] == 1000, "options in force recorded")

    # ---- soma run --format json ----
    run_out = os.path.join(tmp, "run.json")
    r = run([SOMA, "run", "--format", "json", "--output", run_out, "--", PY, "-c",
             "import subprocess; x = [str(i) for i in range(50000)]; "
             "subprocess.run(['/usr/bin/python3', '-c', 'y = list(range(1000))'])"])
    check(r.returncode == 0, f"soma run --format json: {r.stderr[-500:]}")
    values = snapshots(open(run_out).read())
    validate_all(V, values, "soma run --format json")
    # (Not by pid: pids wrap, at 32768 on some systems, and the child's may
    # then be the smaller.)
    check(len(values) == 2 and all(v["reason"] == "exit" for v in values) and
          values[0]["pid"] != values[1]["pid"] and "subprocess" in values[0]["program"] and
          "list(range(1000))" in values[1]["program"],
          "soma run: PROG's exit snapshot first, then its child's")
    r = run([SOMA, "run", "--format", "json", "--interval", "5", "--", PY, "-c",
             "import time; x = [str(i) for i in range(200000)]; time.sleep(0.2)"])
    values = snapshots(r.stderr)
    check(r.returncode == 0 and len(values) >= 10 and values[-1]["reason"] == "exit" and
          all(v["reason"] == "sample" for v in values[:-1]), "--interval: samples, then the exit")
    validate_all(V, values, "soma run --interval")


if PRELOAD:
    preloaded()
else:
    print("sanitized build: python3 under the override and soma run left out")

# ---- soma diff ----
data = os.path.join(ROOT, "tests", "stats", "data")
r = run([SOMA, "diff", os.path.join(data, "diff_before.json"), os.path.join(data, "diff_after.json")])
expected = open(os.path.join(data, "diff_expected.txt")).read()
got = r.stdout.split("\n", 3)[3] if r.stdout.count("\n") > 3 else ""
check(r.returncode == 0 and got == expected, "soma diff of the hand-built snapshots: exact text")
if got != expected:
    print(r.stdout, r.stderr)
check(r.stdout.startswith("before ") and "hand-built before" in r.stdout.split("\n")[0],
      "soma diff names the snapshots")
r = run([SOMA, "diff", out])  # the probe's file: first (everything live) vs last (all freed)
check(r.returncode == 0 and "# bytes in large blocks" in r.stdout and
      "-200,000" in r.stdout and "-1,000" in r.stdout, "soma diff FILE: first vs last")
r = run([SOMA, "diff", os.path.join(data, "diff_before.json"), "/nonexistent.json"])
check(r.returncode == 2 and "/nonexistent.json" in r.stderr, "soma diff: a missing file is named")
bad = os.path.join(tmp, "bad.json")
open(bad, "w").write('{"schema_version": 1, "threshold": 512,\n "num_classes": 32, oops}')
r = run([SOMA, "diff", bad, bad])
check(r.returncode == 2 and "line" in r.stderr, f"soma diff: a syntax error is located ({r.stderr.strip()})")

# ---- soma map ----
def svg_rows(path):
    root = ET.parse(path).getroot()  # well-formed, or this raises
    ns = "{http://www.w3.org/2000/svg}"
    return root, [t.text or "" for t in root.iter(ns + "title")]


mapped = os.path.join(tmp, "probe.svg")
r = run([SOMA, "map", out, "-o", mapped])
check(r.returncode == 0, f"soma map of the probe: {r.stderr}")
root, titles = svg_rows(mapped)
check(sum("reclaimed arena slot" in t for t in titles) == len(freed["detail"]["reclaimed_slots"]),
      "the map of the last snapshot shows every reclaimed slot")
# The first snapshot: take it alone into a file and map it.
first = os.path.join(tmp, "first.json")
text = open(out).read()
import json
json.dump(proc, open(first, "w"))
r = run([SOMA, "map", first, "-o", mapped])
root, titles = svg_rows(mapped)
pool_titles = [t for t in titles if " pool " in t]
carved = sum(len(a["pools"]) for a in proc["detail"]["arenas"])
check(len(pool_titles) == carved, f"one pool rectangle per carved pool ({len(pool_titles)} of {carved})")
cap = (proc["pool_size"] - proc["pool_overhead"]) // 48
check(sum(f"class 2 (48 bytes), {cap} of {cap} blocks" in t for t in pool_titles) == 1000 // cap,
      f"the 1000 blocks of class 2 fill {1000 // cap} pools of {cap}")
html = os.path.join(tmp, "probe.html")
r = run([SOMA, "map", first, "-o", html])
page = open(html).read()
check(r.returncode == 0 and page.startswith("<!DOCTYPE html>") and "<script" not in page and
      "http://" not in page.replace("http://www.w3.org/2000/svg", ""),
      "soma map -o .html: a self-contained page")

# 1200 arenas: 1000 drawn, the rest summarised, and the page says so.
many = dict(proc)
arena = {"address": "0x0", "heap": 0, "heap_kind": "thread", "kind": "small",
         "fresh_pools": 0, "pools": [[5, 170]] * 64}
many["detail"] = dict(proc["detail"], arenas=[dict(arena, address=hex(0x7f0000000000 + i * 2**20))
                                              for i in range(1200)], reclaimed_slots=[])
big = os.path.join(tmp, "many.json")
json.dump(many, open(big, "w"))
r = run([SOMA, "map", big, "-o", mapped])
root, titles = svg_rows(mapped)
svg = open(mapped).read()
check(r.returncode == 0 and "1000 of 1200 arena rows drawn" in svg and
      "the other 200 (200 live) are summarised: 12800 pools full" in svg,
      "1200 arenas: 1000 drawn and the rest summarised, said so")
check(svg.count("<rect") >= 64000, "the 1000 rows have their pools")
one = dict(proc)
one["detail"] = dict(proc["detail"], arenas=[arena], reclaimed_slots=[])
json.dump(one, open(big, "w"))
r = run([SOMA, "map", big, "-o", mapped])
root, titles = svg_rows(mapped)
check(r.returncode == 0 and sum(" pool " in t for t in titles) == 64, "one arena: its 64 pools")
r = run([SOMA, "map", os.path.join(data, "diff_after.json"), "-o", mapped])
check(r.returncode == 2 and "no snapshot with the arena detail" in r.stderr,
      "soma map of a snapshot without detail says why it cannot draw")

# ---- pools whose pages went back ----
ret = os.path.join(tmp, "returned.json")
r = run([PROBE, "returned", ret])
emptied = [int(x, 16) for x in r.stdout.split()]
values = snapshots(open(ret).read()) if r.returncode == 0 else []
check(r.returncode == 0 and len(values) == 2 and len(emptied) == 7,
      f"json_probe returned: two snapshots, seven pools emptied ({r.stderr})")
validate_all(V, values, "json_probe returned")
if len(values) == 2:
    kept, purged = values
    consistent(kept, "pools emptied, still resident")
    consistent(purged, "their pages returned")
    ps = purged["pool_size"]
    check(kept["returned"] == {"pools": 0, "pool_bytes": 0, "medium_pools": 0,
                               "medium_pool_bytes": 0, "pools_total": 0} and
          all(len(p) == 2 for a in kept["detail"]["arenas"] for p in a["pools"]),
          "before soma_purge the empty pools are resident: nothing returned, no third element")
    check(purged["returned"] == {"pools": 5, "pool_bytes": 5 * ps, "medium_pools": 2,
                                 "medium_pool_bytes": 2 * ps, "pools_total": 7},
          f"after soma_purge(1): 5 small and 2 medium pools returned ({purged['returned']})")
    check(purged["unused_pools"] == kept["unused_pools"] == 64 - 10 + 5 and
          purged["medium"]["unused_pools"] == 64 - 4 + 2 and purged["total"] == kept["total"],
          "they are still unused pools of their arenas: the accounting is unchanged")
    marked = {int(a["address"], 16) + i * ps: p for a in purged["detail"]["arenas"]
              for i, p in enumerate(a["pools"]) if len(p) == 3}
    check(set(marked) == set(emptied) and all(p[1:] == [0, 1] for p in marked.values()),
          f"the detail marks exactly the emptied pools, as [class, 0, 1] ({sorted(marked)})")
    r = run([SOMA, "diff", ret])
    got = r.stdout.splitlines()

    def row(label, before, after, change):
        return any(l.split() == label.split() + [before, after, change] for l in got)
    check(r.returncode == 0 and row("# unused pools with pages returned", "0", "5", "+5") and
          row("# bytes of pages returned", "0", f"{5 * ps:,}", f"+{5 * ps:,}") and
          row("# medium pools with pages returned", "0", "2", "+2") and
          row("# medium bytes of pages returned", "0", f"{2 * ps:,}", f"+{2 * ps:,}") and
          row("# pools returned total", "0", "7", "+7") and
          not any("# unused pools " in l and "pages" not in l for l in got),
          "soma diff shows the returned figures' change, and the unused pools' none")
    mapped = os.path.join(tmp, "returned.svg")
    r = run([SOMA, "map", ret, "-o", mapped])
    root, titles = svg_rows(mapped)
    ns = "{http://www.w3.org/2000/svg}"
    styled = [e for e in root.iter(ns + "rect") if e.get("fill") == "url(#returned)"]
    pooled = [e for e in styled if e.find(ns + "title") is not None]
    check(r.returncode == 0 and len(pooled) == 7 and len(styled) == 8 and
          all(e.get("stroke-dasharray") for e in styled),
          f"soma map: the 7 pools, and the legend, dotted with a dashed border ({len(styled)})")
    gone = {int(t.split()[0], 16) for t in titles if "its pages returned to the OS" in t}
    check(gone == set(emptied), "their tooltips name exactly those pools")
    check(sum("5 empty (5 of them with pages returned" in t for t in titles) == 1 and
          sum("2 empty (2 of them with pages returned" in t for t in titles) == 1,
          "each arena's tooltip counts its returned pools")
    svg = open(mapped).read()
    check("pages returned" in svg and "unused pools with pages returned: 7, " + f"{7 * ps:,}" in svg,
          "the legend and the totals name them")
done("test_snapshots")
