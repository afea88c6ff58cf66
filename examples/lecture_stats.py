"""lecture_stats.py: the allocator lecture's app, under soma.

    python3 -m soma examples/lecture_stats.py        (or: make demo-python)

The lecture looks at CPython's allocator with sys._debugmallocstats(): a
dump, then "memory things" (large numbers turned into strings, lists of the
same words over and over), then the dump again.  Under soma the same story
has soma's figures, what changed between the two dumps, and at the end
which Python types fill each size class, which no other tool tells.
docs/PYTHON.md reads the output line by line.
"""
import sys

import soma

RULE = "=" * 72


def section(title):
    print("\n%s\n%s\n%s" % (RULE, title, RULE), flush=True)


if not soma.enabled():
    sys.exit("run me under soma: python3 -m soma %s" % sys.argv[0])

section("1. The allocator at the start (soma.print_stats)")
soma.print_stats(file=sys.stdout)
before = soma.snapshot("start")

# The memory things: large numbers as strings (each a str object of its
# own), and lists that repeat a few words (one str object each, many
# pointers to it).
numbers = [str(10 ** 12 + i * 7919) for i in range(100000)]
words = "the quick brown fox jumps over the lazy dog".split()
lists = [[w for w in words] * 3 for _ in range(20000)]
squares = [float(i) ** 0.5 for i in range(50000)]
pairs = [(i, str(i)) for i in range(30000)]

section("2. After the memory things (soma.print_stats)")
soma.print_stats(file=sys.stdout)
after = soma.snapshot("after")

section("3. What changed (soma.diff)")
print(soma.diff(before, after))

section("4. Which Python types fill the size classes (soma.print_types)")
soma.print_types(top=4)

print("\nkept alive:", len(numbers), len(lists), len(squares), len(pairs))
