"""inside.py: the package's API, run by test_python.py under soma
(python3 -m soma tests/python/inside.py BUILD).  Real objects of the real
interpreter; every check is a property that fails if the package lies."""
import ctypes
import gc
import io
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import testlib  # noqa: E402
from testlib import check  # noqa: E402

import soma  # noqa: E402

check(soma.enabled(), "soma.enabled() under python3 -m soma")
check(os.environ.get("PYTHONMALLOC") == "malloc", "python3 -m soma sets PYTHONMALLOC=malloc")
check(os.environ.get("SOMA_PYTHON_REEXEC") is None, "the re-exec mark is not left to children")
check(sys.argv[0].endswith("inside.py") and len(sys.argv) == 2 and os.path.isdir(sys.argv[1]),
      "the script and its argument reach the program: %r" % sys.argv)

# ---- stats(): every figure, named as in the JSON snapshot ----
st = soma.stats()
for key in ("threshold", "num_classes", "classes", "arenas_current", "bytes_in_allocated_blocks",
            "medium", "large", "total"):
    check(key in st, "stats() has %s" % key)
check(len(st["classes"]) == st["num_classes"] == 32, "32 classes")
by_hand = sum(c["blocks_in_use"] * c["size"] for c in st["classes"])
check(by_hand == st["bytes_in_allocated_blocks"],
      "bytes_in_allocated_blocks %d = sum of blocks_in_use * size %d"
      % (st["bytes_in_allocated_blocks"], by_hand))
check(st["total"] == st["arena_bytes"], "Total is the arenas' bytes")
if testlib.need(["python3-jsonschema"], testlib.importable("jsonschema")):
    import jsonschema
    schema = json.load(open(testlib.SCHEMA))
    try:
        jsonschema.validate(st, schema)
        check(True, "schema")
    except jsonschema.ValidationError as e:
        check(False, "stats() against the schema: %s" % e.message)

# ---- print_stats(file=...): CPython's layout, soma's sections, free lists ----
buf = io.StringIO()
soma.print_stats(file=buf)
text = buf.getvalue()
check(text.startswith("Small block threshold = 512, in 32 size classes."),
      "print_stats starts as CPython's dump: %r" % text[:60])
check("# arenas allocated total" in text and "Total" in text, "the arena and byte lines")
# The interpreter's own lines (sys._debugmallocstats): its free lists.
check("free PyFloatObject" in text or "free PyDictObject" in text or " free " in text,
      "the interpreter's free-list lines follow")
check(text.index("Small block threshold") < text.rindex(" free "), "after soma's part")

# ---- snapshots and diff: growth shows ----
before = soma.snapshot()
keep = [str(i) * 3 for i in range(100000)] + [float(i) for i in range(50000)]
after = soma.snapshot()
d = soma.diff(before, after)
check(d.startswith("before snapshot: pid %d" % os.getpid()), "diff's heading: %r" % d[:60])
check("after  snapshot" in d, "diff names the after snapshot")
grown = after.data["bytes_in_allocated_blocks"] - before.data["bytes_in_allocated_blocks"]
check(grown > 100000 * 32, "snapshots see the growth: %d bytes" % grown)
# The class rows: class, size, pools, change, blocks in use, change, ...
rows = {int(f[1]): int(f[5].replace(",", "")) for f in (l.split() for l in d.splitlines())
        if len(f) == 8 and f[0].isdigit() and f[1].isdigit()}
# (a few floats may reuse blocks the interpreter's float free list held)
check(rows.get(32, 0) >= 49000, "the 32-byte class (the 50,000 floats) grew: %r" % rows)
check(rows.get(64, 0) >= 90000, "the 64-byte class (most of the strings) grew: %r" % rows)
with tempfile.TemporaryDirectory() as tmp:
    p = after.save(os.path.join(tmp, "after.json"))
    back = soma.load(p)
    check(back.to_json().strip() == after.to_json().strip(), "save/load round trip")
    check(json.loads(back.to_json())["pid"] == os.getpid(), "the snapshot is this process's")
    d2 = soma.diff(before, back)
    check(d2.split("\n", 2)[2] == d.split("\n", 2)[2], "diff of a loaded snapshot is the same")
svg = after._repr_svg_()
check(svg.lstrip().startswith("<svg") or svg.lstrip().startswith("<?xml"), "_repr_svg_ is SVG")
check("<svg" in after._repr_html_(), "_repr_html_ holds the SVG")
del keep

# ---- returned pools: pages given back, the pools still in their arenas ----
# Every 5000th string kept: their arenas stay, the other pools empty.  soma
# itself (the override) gives their pages back now.
purge = ctypes.CDLL(None).soma_purge
purge.restype, purge.argtypes = ctypes.c_size_t, [ctypes.c_int]
held = [str(i) * 4 for i in range(300000)]
kept = held[::5000]
del held
gc.collect()
# A snapshot's first large allocation takes fresh memory, and that makes the
# heap give back as much of its empty pools' pages (docs/DESIGN.md, "Idle
# memory changes sides"): pools soma_purge then does not count.  One
# snapshot first, so that the next one's memory comes from the cache.
soma.snapshot("warm")
before = soma.snapshot("before")
given = purge(1)
after = soma.snapshot("after")
st, ret = after.data, after.data["returned"]
check(set(ret) == set(soma._soma.RETURNED_FIELDS) and len(ret) == 5, "stats() has the returned figures")
check(ret["pools"] >= 100 and ret["pools_total"] >= ret["pools"] + ret["medium_pools"],
      "the emptied pools' pages went back: %r" % ret)
check(ret["pool_bytes"] == ret["pools"] * st["pool_size"] <= st["unused_pool_bytes"] and
      ret["medium_pool_bytes"] == ret["medium_pools"] * st["pool_size"] <= st["medium"]["unused_pool_bytes"],
      "their bytes are a part of the unused pools' bytes")
check(given >= ret["pool_bytes"] + ret["medium_pool_bytes"] - before.data["returned"]["pool_bytes"]
      - before.data["returned"]["medium_pool_bytes"], "soma_purge said as much: %d bytes" % given)
lines = ["bytes_in_allocated_blocks", "bytes_in_available_blocks", "unused_pool_bytes",
         "bytes_lost_to_pool_headers", "bytes_lost_to_quantization", "bytes_lost_to_arena_alignment"]
check(sum(st[k] for k in lines) == st["total"] == st["arena_bytes"], "the byte lines still add up")
marked = [p for a in st["detail"]["arenas"] for p in a["pools"] if len(p) == 3]
check(len(marked) == ret["pools"] + ret["medium_pools"] and all(p[1:] == [0, 1] for p in marked),
      "the detail marks each returned pool [class, 0, 1]")
d = soma.diff(before, after)
row = [l.split() for l in d.splitlines() if l.startswith("# unused pools with pages returned")]
check(len(row) == 1 and int(row[0][-2].replace(",", "")) == ret["pools"] and row[0][-1][0] == "+",
      "soma.diff shows the returned pools' rise: %r" % row)
buf = io.StringIO()
soma.print_stats(file=buf)
check("\nReturned pools (soma's own: unused pools above whose pages went back to the OS).\n" in
      buf.getvalue() and "# pools returned total" in buf.getvalue(), "print_stats has the section")
svg = after._repr_svg_()
check(svg.count('fill="url(#returned)"') == len(marked) + 1, "the map draws them, and the legend")
with tempfile.TemporaryDirectory() as tmp:
    back = soma.load(after.save(os.path.join(tmp, "after.json")))
    check(back.data["returned"] == ret, "load() reads the returned figures back")
    # A snapshot from before them: no key, pairs only.
    old = json.loads(after.to_json())
    del old["returned"]
    for a in old["detail"]["arenas"]:
        a["pools"] = [p[:2] for p in a["pools"]]
    path = os.path.join(tmp, "old.json")
    with open(path, "w") as f:
        json.dump(old, f)
    older = soma.load(path)
    check(older.data["returned"] == dict.fromkeys(soma._soma.RETURNED_FIELDS, 0),
          "an older snapshot's returned figures load as zeros")
    check('fill="url(#returned)"' not in older._repr_svg_().split("</defs>", 1)[1].split("block size")[0],
          "and its map has no returned pool")
del kept

# ---- types(): which Python types fill each class ----


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


def table():
    gc.collect()
    return soma.types()


def count(rows, name):
    return sum(r["count"] for r in rows if r["type"] == name)


def nbytes(rows, name):
    return sum(r["bytes"] for r in rows if r["type"] == name)


t0 = table()
objs = [Slotted(i, None) for i in range(100000)]
t1 = table()
rows = [r for r in t1 if r["type"] == "__main__.Slotted"]
# basic size: the object header (16) and two slots (16), plus the GC
# header (16): 48 bytes, CPython's class 2.
expect_size = Slotted.__basicsize__ + 16
check(len(rows) == 1, "Slotted in one class: %r" % rows)
if rows:
    r = rows[0]
    check(r["block_size"] == (expect_size + 15) // 16 * 16 and r["size_class"] == expect_size // 16 - 1,
          "Slotted in the class of its basic size plus GC header (%d): %r" % (expect_size, r))
    check(r["count"] == 100000, "100,000 Slotted counted exactly: %d" % r["count"])
    check(r["bytes"] == r["count"] * r["block_size"], "bytes = count * block size")
del objs

# Floats, tuples, dicts and strings: the growth of each row against what
# was made, and against sys.getsizeof (CPython's own size, GC header
# included): the block is that rounded up to the class.  Tolerance: 1%.
N = 50000
t0 = table()
floats = [float(i) + 0.5 for i in range(N)]
tuples = [(i, []) for i in range(N)]     # holds a list: stays GC-tracked
dicts = [{"k": i} for i in range(N)]
strs = ["s%07d" % i for i in range(N)]
t1 = table()


def near(got, want, what):
    check(abs(got - want) <= max(50, want // 100), "%s: %d, expected %d" % (what, got, want))


def rounded(o):
    return (sys.getsizeof(o) + 15) // 16 * 16


near(count(t1, "float") - count(t0, "float"), N, "floats")
near(nbytes(t1, "float") - nbytes(t0, "float"), sum(map(rounded, floats)), "float bytes")
near(count(t1, "tuple") - count(t0, "tuple"), N, "tuples")
near(nbytes(t1, "tuple") - nbytes(t0, "tuple"), sum(map(rounded, tuples)), "tuple bytes")
near(count(t1, "list") - count(t0, "list"), N + 4, "lists (one per tuple, and the four holders)")
near(count(t1, "dict") - count(t0, "dict"), N, "dicts")
near(count(t1, "str") - count(t0, "str"), N, "strs")
near(nbytes(t1, "str") - nbytes(t0, "str"), sum(map(rounded, strs)), "str bytes")
# gc.get_objects() sees every tracked tuple: the table's growth is theirs.
gc_tuples = sum(1 for o in gc.get_objects() if type(o) is tuple and len(o) == 2 and o[1] == [])
near(gc_tuples, N, "gc.get_objects() agrees on the tuples made")
# Storage that is no object: the list holders' arrays grew.
check(nbytes(t1, soma.NO_OBJECT) - nbytes(t0, soma.NO_OBJECT) >= 4 * N * 8,
      "the lists' pointer arrays counted as blocks with no object")
for r in t1:
    check(set(r) == {"type", "size_class", "block_size", "count", "bytes"}, "row keys")
    break
check(all(t1[i]["bytes"] >= t1[i + 1]["bytes"] for i in range(len(t1) - 1)), "largest first")
check(len(soma.types(top=3)) == 3, "top=3 gives 3 rows")
out = io.StringIO()
soma.print_types(file=out)
text = out.getvalue()
check("  float" in text and "all types" in text, "print_types shows the classes and types")
last = text.rstrip().splitlines()[-1].split()
in_all = sum(r["count"] for r in soma.types())
check(last[:2] == ["in", "all"] and abs(int(last[2].replace(",", "")) - in_all) <= in_all // 100,
      "the table's last line counts all blocks in use: %r against %d" % (last, in_all))
del floats, tuples, dicts, strs

testlib.done("inside.py")
