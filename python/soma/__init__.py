"""soma from inside a Python program.

soma is a small-object allocator built like CPython's pymalloc (arenas,
pools, 32 size classes of 16 to 512 bytes) and made visible.  This package
talks to the soma that is already the process's malloc: run the program
with ``python3 -m soma SCRIPT`` (which sets LD_PRELOAD and PYTHONMALLOC=malloc
and runs it again), then::

    import soma
    soma.print_stats()          # CPython's layout, soma's sections, free lists
    before = soma.snapshot()
    ...                         # do memory things
    print(soma.diff(before, soma.snapshot()))
    soma.print_types()          # which Python types fill each size class

Outside soma every call that needs it raises RuntimeError saying how to run
under soma; ``soma.enabled()`` says whether it is there.  docs/PYTHON.md is
the tutorial.
"""

import io
import json
import os
import sys

from . import _soma

__all__ = [
    "enabled", "stats", "print_stats", "snapshot", "load", "Snapshot", "diff", "types",
    "print_types", "override_path",
]


def enabled():
    """True if soma is this process's malloc."""
    return _soma.enabled()


def override_path():
    """The soma override library (libsoma-override.so) to preload, or None.

    In order: $SOMA_OVERRIDE, the one this process already runs under, the
    one next to this package (pip's build), the one recorded when the
    package was built or installed (CMake)."""
    cands = [os.environ.get("SOMA_OVERRIDE"), _soma.library()]
    here = os.path.dirname(os.path.abspath(__file__))
    cands += [os.path.join(here, n) for n in sorted(os.listdir(here))
              if n.startswith("libsoma-override") and n.endswith(".so")]
    try:
        from . import _paths
        cands.append(_paths.OVERRIDE)
    except ImportError:
        pass
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


def _how():
    lib = override_path() or "/path/to/libsoma-override.so"
    return ("soma is not this process's malloc. Run the program under soma:\n"
            "    python3 -m soma SCRIPT [ARGS]     (or -m soma -c CODE)\n"
            "or by hand:\n"
            "    LD_PRELOAD=%s PYTHONMALLOC=malloc python3 SCRIPT" % lib)


def _need():
    if not _soma.enabled():
        raise RuntimeError(_how())


def _python_objects_in_soma():
    # Only plain malloc: malloc_debug's hooks put 16 bytes in front of every
    # object (its header would not be where the table looks), and -E / -I
    # make the interpreter ignore PYTHONMALLOC altogether.
    return os.environ.get("PYTHONMALLOC", "") == "malloc" and not sys.flags.ignore_environment


def stats():
    """Every figure of soma's snapshot as a dict, named as in the JSON
    snapshot (docs/stats.schema.json): the CPython table ("classes"), the
    arena and byte figures, "medium", "large", "returned" (the unused pools
    whose pages went back to the OS), "guarded" (blocks on pages of their
    own: SOMA_GUARD_SAMPLE, SOMA_DEBUG=guard), and the arena detail (a pool
    whose pages went back is [class, 0, 1])."""
    _need()
    return json.loads(_soma.stats_json())


def _free_lists():
    """The interpreter's own lines of sys._debugmallocstats(): its free
    lists.  CPython writes them to C's stderr; they are caught there."""
    if not hasattr(sys, "_debugmallocstats"):
        return ""
    import tempfile
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace")


def print_stats(file=None):
    """Print CPython's layout of the allocator's state (soma_stats_print:
    the size-class table, arenas, bytes, then soma's own sections), then the
    interpreter's free-list lines as sys._debugmallocstats() prints them.
    file: any object with write(); sys.stderr by default."""
    _need()
    text = _soma.stats_text()
    lists = _free_lists()
    out = sys.stderr if file is None else file
    out.write(text)
    if lists:
        if not text.endswith("\n"):
            out.write("\n")
        out.write(lists)
    if hasattr(out, "flush"):
        out.flush()


class Snapshot:
    """One snapshot of soma's state, as its JSON text (schema:
    docs/stats.schema.json).  In a notebook it shows as the arena map."""

    def __init__(self, text, name="snapshot"):
        self._text = text
        self.name = name
        self._data = None

    @property
    def data(self):
        """The snapshot as a dict (the same as soma.stats() returned then).
        A snapshot from a soma older than the "returned" or "guarded"
        figures gets them as zeros, as soma diff and soma map read it."""
        if self._data is None:
            self._data = json.loads(self._text)
            self._data.setdefault("returned", dict.fromkeys(_soma.RETURNED_FIELDS, 0))
            guarded = self._data.setdefault("guarded", {})
            for key in _soma.GUARDED_FIELDS:
                guarded.setdefault(key, 0)
        return self._data

    def to_json(self):
        """The snapshot's JSON text, as soma writes it (schema-valid)."""
        return self._text

    def save(self, path):
        """Write the JSON to path (soma diff, soma map and soma.load read it)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._text)
            if not self._text.endswith("\n"):
                f.write("\n")
        return path

    def _title(self):
        d = self.data
        return "%s: pid %s, %s arenas" % (self.name, d.get("pid"), d.get("arenas_current"))

    def _repr_svg_(self):
        return _soma.map_svg(self._text, self._title(), True)

    def _repr_html_(self):
        return "<div>%s</div>" % _soma.map_svg(self._text, self._title(), False)

    def __repr__(self):
        d = self.data
        return "<soma.Snapshot %s: %s arenas, %s bytes in allocated blocks>" % (
            self.name, d.get("arenas_current"), d.get("bytes_in_allocated_blocks"))


def snapshot(name="snapshot"):
    """The allocator's state now, as a Snapshot; name is how diff calls it."""
    _need()
    return Snapshot(_soma.stats_json(), name)


def load(path):
    """A Snapshot read back from a file soma wrote (Snapshot.save, soma run
    --format json, SOMA_STATS_FILE).  A file of several snapshots (samples,
    dumps appended) gives its last one."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    dec = json.JSONDecoder()
    i, last = 0, None
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            _, end = dec.raw_decode(text, i)
        except ValueError:
            if last is None:
                raise ValueError("%s: no soma snapshot in it" % path) from None
            break  # a damaged one at the end (a process killed while writing)
        last = (i, end)
        i = end
    if last is None:
        raise ValueError("%s: no soma snapshot in it" % path)
    return Snapshot(text[last[0]:last[1]], path)


def diff(before, after):
    """What changed from before to after (Snapshots), as the text `soma diff`
    prints: per class the change in pools, blocks in use and available
    blocks, the arena counters, then every byte figure, biggest first."""
    _need()
    return _soma.diff(before.to_json(), after.to_json(), before.name, after.name)


def _qualname(t):
    mod = getattr(t, "__module__", None)
    q = getattr(t, "__qualname__", t.__name__)
    return q if mod in (None, "builtins") else "%s.%s" % (mod, q)


NO_OBJECT = "(no object)"


def types(top=None):
    """Which Python types occupy soma's blocks in use now: a list of dicts
    with keys type (qualified name; "(no object)" for blocks that hold none:
    string and list storage, dict keys, C's own), size_class (CPython's
    0..31, soma's medium classes after them, -1 for large blocks),
    block_size (the class's; None for large blocks), count and bytes.
    Largest first (bytes); top: only the first top rows.  Exact for the
    blocks in use at the call when no thread outside Python allocates
    meanwhile (the GIL holds the interpreter's own threads still)."""
    _need()
    if not _python_objects_in_soma():
        raise RuntimeError("PYTHONMALLOC is not malloc here (or -E/-I ignores it): Python's "
                           "objects are not soma's blocks. " + _how().split("\n", 1)[1])
    seen, stack = {}, [object, type]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen[id(t)] = t
        try:
            stack.extend(type.__subclasses__(t))
        except TypeError:
            pass
    found, dropped = _soma.types(list(seen.values()))
    if dropped:
        raise RuntimeError("soma.types: %d blocks not counted (table full)" % dropped)
    rows = [{"type": NO_OBJECT if t is None else _qualname(t), "size_class": c,
             "block_size": bs if c >= 0 else None, "count": n, "bytes": b}
            for t, c, bs, n, b in found]
    rows.sort(key=lambda r: (-r["bytes"], -r["count"], r["size_class"], r["type"]))
    return rows if top is None else rows[:top]
    return rows


def print_types(top=4, classes=10, file=None):
    """Print the type table: the size classes in use, the one with the most
    bytes first (the first `classes` of them; None: all), each with its
    blocks and bytes, then the types in it, largest first (the first `top`;
    None: all).  file: any object with write(); sys.stdout by default."""
    rows = types()
    out = sys.stdout if file is None else file
    by = {}
    for r in rows:
        by.setdefault(r["size_class"], []).append(r)
    total = {c: (sum(r["count"] for r in rs), sum(r["bytes"] for r in rs)) for c, rs in by.items()}
    order = sorted(by, key=lambda c: -total[c][1])
    shown = order if classes is None else order[:classes]
    w = min(max([len(r["type"]) + 2 for c in shown for r in by[c][:top]] + [24]), 48)
    line = "%5s %6s  %-" + str(w) + "s %11s %13s\n"

    def num(n):
        return "{:,}".format(n)

    out.write("Blocks in use by Python type, per size class (soma.types); "
              "%s: storage, not an object\n" % NO_OBJECT)
    out.write(line % ("class", "size", "type", "blocks", "bytes"))
    for c in shown:
        rs = by[c]
        size = "" if c < 0 else str(rs[0]["block_size"])
        out.write(line % ("large" if c < 0 else c, size, "all types", num(total[c][0]),
                          num(total[c][1])))
        keep = rs if top is None else rs[:top]
        for r in keep:
            name = r["type"] if len(r["type"]) + 2 <= w else r["type"][:w - 5] + "..."
            out.write(line % ("", "", "  " + name, num(r["count"]), num(r["bytes"])))
        if len(keep) < len(rs):
            rest = rs[len(keep):]
            out.write(line % ("", "", "  (%d more types)" % len(rest),
                              num(sum(r["count"] for r in rest)), num(sum(r["bytes"] for r in rest))))
    if len(shown) < len(order):
        rest = order[len(shown):]
        out.write(line % ("", "", "(%d more classes)" % len(rest),
                          num(sum(total[c][0] for c in rest)), num(sum(total[c][1] for c in rest))))
    out.write(line % ("", "", "in all", num(sum(t[0] for t in total.values())),
                      num(sum(t[1] for t in total.values()))))
    if hasattr(out, "flush"):
        out.flush()
