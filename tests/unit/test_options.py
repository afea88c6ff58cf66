#!/usr/bin/env python3
"""test_options: the option table (common/options.h) and its uses agree.

  - docs/OPTIONS.md's table, between its marker lines, is exactly what
    `soma help options --markdown` prints from the table;
  - every option of the table has its own section in docs/OPTIONS.md;
  - the library parses from the same table: for each option, a bad value
    (chosen by the row's type) gets exactly one warning line that names
    the option and the row's default, and the program runs on;
  - no variable named SOMA_* in the library's sources is missing from the
    table (a new getenv without a row would be an undocumented option).

usage: test_options.py SOURCE_DIR SOMA_CLI
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from testlib import check, done  # noqa: E402

BAD = {"bool": "maybe", "path": "", "signal": "BOGUS", "text or json": "yaml",
       "milliseconds": "-5", "bytes": "-5", "bool, report or guard": "maybe", "1 in N": "-5",
       "bool or bytes": "maybe"}


def main():
    src, cli = sys.argv[1], sys.argv[2]
    table = subprocess.run([cli, "help", "options", "--markdown"], capture_output=True,
                           text=True, check=True).stdout
    doc = open(os.path.join(src, "docs", "OPTIONS.md"), encoding="utf-8").read()
    m = re.search(r"<!-- options-table:begin -->\n(.*?)<!-- options-table:end -->", doc, re.S)
    check(m is not None, "docs/OPTIONS.md has the marker lines")
    if m:
        check(m.group(1) == table, "docs/OPTIONS.md's table is `soma help options --markdown`'s "
                "(regenerate it):\n--- docs\n" + (m.group(1) if m else "") + "--- code\n" + table)

    rows = [r for r in table.splitlines()[2:] if r.startswith("| `")]
    check(len(rows) >= 8, f"the table has {len(rows)} options")
    names = []
    for row in rows:
        cells = [x.strip() for x in row.strip("|").split("|")]
        name, kind, default = cells[0].strip("`"), cells[1], cells[2]
        names.append(name)
        check(re.search(r"^### `?%s`?$" % name, doc, re.M) is not None,
                f"docs/OPTIONS.md has a section for {name}")
        lib_default = re.match(r"`([^`]*)`", default).group(1)
        bad = BAD.get(kind)
        check(bad is not None, f"{name}: a bad value for its type '{kind}' is known here")
        if bad is None:
            continue
        env = dict(os.environ, **{name: bad})
        p = subprocess.run([cli, "version"], capture_output=True, text=True, env=env)
        lines = [l for l in p.stderr.splitlines() if l.startswith("soma: warning:")]
        check(p.returncode == 0 and len(lines) == 1 and f"{name}={bad} is not" in lines[0]
                and lines[0].endswith(f"using the default, {lib_default}"),
                f"{name}={bad!r}: one warning naming it and the default {lib_default!r}, "
                f"status {p.returncode}: {p.stderr!r}")

    used = set()
    for root, _, files in os.walk(os.path.join(src, "src")):
        for f in files:
            if f.endswith((".c", ".h")):
                text = open(os.path.join(root, f), encoding="utf-8").read()
                used |= set(re.findall(r'getenv\("(SOMA_[A-Z_]+)"\)', text))
    check(used <= set(names), f"every SOMA_* variable the library reads is in the table: "
            f"{sorted(used - set(names))} are not")
    done("test_options")


if __name__ == "__main__":
    sys.exit(main())
