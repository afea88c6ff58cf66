"""site_dir.py PREFIX: where a package installed under PREFIX is found by
this interpreter (make install).  Debian's python3 reads
PREFIX/lib/python3.X/dist-packages for /usr/local; others site-packages.
The directory of sys.path under PREFIX is preferred, so that the package
is importable without PYTHONPATH."""
import os
import sys
import sysconfig

prefix = os.path.abspath(sys.argv[1])
for p in sys.path:
    if p.startswith(prefix + os.sep) and os.path.basename(p) in ("dist-packages", "site-packages"):
        print(p)
        sys.exit(0)
print(sysconfig.get_path("platlib", vars={"base": prefix, "platbase": prefix}))
