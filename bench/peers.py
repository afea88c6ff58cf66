"""bench/peers.py: what bench/run.py and bench/run_programs.py share: the
peer allocators (Debian's packages, preloaded by path) and the command line
(positional arguments, then --NAME VALUE options: --reps N, --scale N,
--only a,b, --floor PATH, --unhardened PATH)."""
import os
import sys

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
]


def allocators(soma):
    """(name, library or None) for every installed peer, then soma; says
    which peers are left out."""
    missing = [n for n, p in PEERS if p is not None and not os.path.exists(p)]
    if missing:
        print(f"# not installed, left out: {', '.join(missing)}")
    return [(n, p) for n, p in PEERS if p is None or os.path.exists(p)] + [("soma", soma)]


def parse(argv, npositional, defaults, usage):
    """The positional arguments and a dict of options (--reps N, --scale N,
    --only a,b, --floor PATH; defaults for the others)."""
    if len(argv) < npositional:
        sys.exit(usage)
    opts = dict(defaults)
    rest = argv[npositional:]
    while len(rest) >= 2:
        opt, val, rest = rest[0].lstrip("-"), rest[1], rest[2:]
        if opt in ("reps", "scale"):
            opts[opt] = int(val)
        elif opt == "only":
            opts[opt] = val.split(",")
        elif opt in ("floor", "unhardened"):
            opts[opt] = os.path.abspath(val)
        else:
            sys.exit(f"unknown option --{opt}\n{usage}")
    if rest:
        sys.exit(usage)
    return argv[:npositional], opts
