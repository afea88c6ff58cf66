# Dictionaries and sets with string keys: insert, look up, delete, rebuild.
import sys

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
acc = 0
for r in range(rounds):
    d = {}
    for i in range(300000):
        d["key%d" % (i * 7919 % 300007)] = i
    s = set(k for k in d if k.endswith("7"))
    for i in range(0, 300000, 3):
        d.pop("key%d" % (i * 7919 % 300007), None)
    acc += len(d) + len(s) + sum(d.values()) % 1000
print(acc)
