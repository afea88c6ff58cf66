"""pip install --no-build-isolation ./python

Builds the package's two shared objects from the repository's sources:
  - soma._soma, the C extension (python/soma/_soma.c, and the CLI's
    snapshot reader and map drawer, tools/soma/);
  - soma/libsoma-override.so, the LD_PRELOAD override that
    `python3 -m soma` runs programs under: the library's sources as
    CMakeLists.txt lists them (SOMA_SOURCES), plus src/runtime/override.c,
    compiled as CMake compiles the override (SOMA_OVERRIDE, hardened).
The sources are read from the checkout this directory sits in, so the
package and the library always come from the same commit.
"""

import os
import re

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rel(p):
    # setuptools wants source paths relative to setup.py's directory.
    return os.path.relpath(os.path.join(ROOT, p), HERE)


def soma_sources():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"set\(SOMA_SOURCES\s+([^)]*)\)", text)
    if not m:
        raise SystemExit("setup.py: SOMA_SOURCES not found in CMakeLists.txt")
    return m.group(1).split() + ["src/runtime/override.c"]


def version():
    with open(os.path.join(ROOT, "include", "soma.h"), encoding="utf-8") as f:
        return re.search(r'#define SOMA_VERSION "([^"]+)"', f.read()).group(1)


TOOL = ["tools/soma/json.c", "tools/soma/snapshot.c", "tools/soma/page.c", "tools/soma/figures.c"]
INCLUDES = [rel("include"), rel("src"), rel("."), rel("tools/soma")]
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]


class BuildWithOverride(build_ext):
    """build_ext, then the override library into the package."""

    def run(self):
        super().run()
        cc = self.compiler
        objs = cc.compile([rel(s) for s in soma_sources()], output_dir=self.build_temp,
                          macros=[("SOMA_OVERRIDE", None), ("SOMA_HARDEN", "1")],
                          include_dirs=INCLUDES,
                          extra_preargs=CFLAGS + ["-O2", "-fPIC", "-fvisibility=hidden", "-pthread"])
        outdir = os.path.join(self.build_lib, "soma")
        os.makedirs(outdir, exist_ok=True)
        out = os.path.join(outdir, "libsoma-override.so")
        cc.link_shared_object(objs, out, libraries=["pthread", "dl"],
                              extra_postargs=["-Wl,-Bsymbolic-functions"])
        if self.inplace:
            self.copy_file(out, os.path.join(HERE, "soma", "libsoma-override.so"))


setup(
    name="soma",
    version=version(),
    description="See soma, a CPython-style small-object allocator, from inside a Python program",
    packages=["soma"],
    ext_modules=[Extension("soma._soma", ["soma/_soma.c"] + [rel(s) for s in TOOL],
                           include_dirs=INCLUDES, extra_compile_args=CFLAGS,
                           libraries=["dl", "m"])],
    cmdclass={"build_ext": BuildWithOverride},
    python_requires=">=3.9",
)
