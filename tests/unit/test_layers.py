#!/usr/bin/env python3
"""test_layers: src/ is in layers, and no layer calls up.

The library's folders, lowest first, are LAYERS below (src/README.md says
what each holds, in the same order: checked here).  A file may use what
its own layer and the layers below define, never what a higher layer
defines: callbacks are passed down (the hooks of src/base/start.h, found
by the linker), never called up.  Checked two ways:

  - in the built objects, with nm: every symbol an object leaves undefined
    that another object of the library defines must come from the same
    layer or a lower one (functions and data alike; inline functions are
    compiled into their callers, so a header's inline that calls up is
    caught in the object that includes it);
  - in the sources: a file includes headers of its own layer or lower ones
    only (and common/, shared with the CLI); the CLI (tools/) includes no
    header of src/ at all.

Before it looks at soma, it runs the same check on a made-up set of
objects with one call up and one include up, and fails unless it finds
both: the check itself is tested each time.

usage: test_layers.py SOURCE_DIR OBJECTS [OBJECTS...]
  OBJECTS: the ;-separated object files of one build ($<TARGET_OBJECTS:...>).
"""
import os
import re
import subprocess
import sys

LAYERS = ["base", "os", "pool", "heap", "malloc", "stats", "runtime"]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    """The layer of a source or object path (…/src/<layer>/…), or None."""
    parts = os.path.normpath(path).split(os.sep)
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1] == "src" and parts[i] in RANK:
            return parts[i]
    return None


def symbol_problems(objects):
    """objects: {path: (defined, undefined)}; the calls up, as text."""
    owner = {}
    for path, (defined, _) in objects.items():
        for sym in defined:
            owner[sym] = path
    problems = []
    for path, (_, undefined) in sorted(objects.items()):
        mine = layer_of(path)
        for sym in sorted(undefined):
            if sym not in owner:
                continue  # libc, libpthread, the linker's section bounds
            if "__wrap_" + sym in owner:
                # A C library name the override takes (runtime/copy.c: the
                # checked memcpy and kin); its link (-Wl,--wrap) sends
                # soma's own calls to __wrap_NAME, the C library's function.
                continue
            theirs = layer_of(owner[sym])
            if mine and theirs and RANK[theirs] > RANK[mine]:
                problems.append(f"{short(path)} ({mine}) uses {sym}, defined in "
                                f"{short(owner[sym])} ({theirs}), a higher layer")
    return problems


def include_problems(files):
    """files: {path: text}; the includes up (and the CLI's of src/), as text."""
    problems = []
    for path, text in sorted(files.items()):
        mine = layer_of(path)
        for inc in INCLUDE.findall(text):
            top = inc.split("/")[0]
            if top not in RANK:
                continue
            if mine is None:
                problems.append(f"{short(path)} includes {inc}: the tools see the library "
                                f"through include/ and common/ only")
            elif RANK[top] > RANK[mine]:
                problems.append(f"{short(path)} ({mine}) includes {inc}, a higher layer")
    return problems


def short(path):
    m = re.search(r"(src|tools)/.*", path.replace(".c.o", ".c"))
    return m.group(0) if m else path


def nm(path):
    out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "U":
            undefined.add(f[1])
        elif len(f) == 3 and f[1] in "TDBRVWCGS" and f[1] != "U":
            defined.add(f[2])
    return defined, undefined


def self_test():
    fake_objects = {
        "/b/src/pool/pool.c.o": ({"soma__pool_pop"}, {"soma__malloc_slow", "memset"}),
        "/b/src/malloc/malloc.c.o": ({"soma__malloc_slow"}, {"soma__pool_pop"}),
    }
    fake_files = {
        "/s/src/heap/heap.c": '#include "pool/pool.h"\n#include "stats/stats.h"\n',
        "/s/tools/soma/run.c": '#include "common/text.h"\n',
    }
    sym, inc = symbol_problems(fake_objects), include_problems(fake_files)
    ok = (len(sym) == 1 and "soma__malloc_slow" in sym[0]
          and len(inc) == 1 and "stats/stats.h" in inc[0])
    if not ok:
        print("test_layers: the check misses a planted call or include up:", sym, inc)
    return ok


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    if not self_test():
        return 1
    src_dir = sys.argv[1]
    problems = []

    # Every folder of src/ has its place, and src/README.md lists them in order.
    folders = sorted(d for d in os.listdir(os.path.join(src_dir, "src"))
                     if os.path.isdir(os.path.join(src_dir, "src", d)))
    for d in folders:
        if d not in RANK:
            problems.append(f"src/{d}/ is in no layer: add it to LAYERS here and to src/README.md")
    readme = open(os.path.join(src_dir, "src", "README.md")).read()
    listed = [m for m in re.findall(r"^\|\s*`?(\w+)/`?\s*\|", readme, re.M) if m in RANK]
    if listed != LAYERS:
        problems.append(f"src/README.md lists the layers as {listed}, not {LAYERS}")

    # Each list is one build (the library, the override): a symbol is
    # looked for among the objects of its own build only (the library's
    # sys.c calls glibc's malloc, which only the override defines).
    objects = {}
    for arg in sys.argv[2:]:
        build = {path: nm(path) for path in filter(None, arg.split(";"))}
        if not any(layer_of(p) for p in build):
            problems.append(f"no object of src/ in {arg[:80]}")
        problems += symbol_problems(build)
        objects.update(build)

    files = {}
    for top in ("src", "tools"):
        for root, _, names in os.walk(os.path.join(src_dir, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    p = os.path.join(root, n)
                    files[p] = open(p, encoding="utf-8").read()
    problems += include_problems(files)

    for p in problems:
        print("test_layers:", p)
    n_sym = sum(len(u) for _, u in objects.values())
    print(f"test_layers: {len(objects)} objects, {n_sym} undefined symbols, {len(files)} "
          f"sources read; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
