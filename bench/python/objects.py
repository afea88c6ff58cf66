# Object churn: a tree of small objects, counters of short strings, a dict
# of lists and tuples, built, used and dropped in rounds.
import collections, sys

class Node:
    __slots__ = ("key", "kids")
    def __init__(self, key):
        self.key, self.kids = key, []

def depth(n):
    return 1 + max((depth(k) for k in n.kids), default=0)

total = 0
for rnd in range(int(sys.argv[1]) if len(sys.argv) > 1 else 4):
    nodes = [Node(i) for i in range(150000)]
    for i in range(1, len(nodes)):
        nodes[(i - 1) // 3].kids.append(nodes[i])
    words = collections.Counter(str(i % 997) * (i % 7 + 1) for i in range(200000))
    table = {i: [str(i), i * 2.5, (i, -i)] for i in range(100000)}
    total += depth(nodes[0]) + len(words) + len(table)
    del nodes, words, table
print(total)
