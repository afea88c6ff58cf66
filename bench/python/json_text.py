# Text and JSON: encode and decode a nested structure, split and join text,
# format numbers; many short-lived strings, lists and dicts.
import json, sys

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
check = 0
for r in range(rounds):
    doc = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 13), "x"], "v": i / 7}
           for i in range(60000)]
    text = json.dumps(doc)
    back = json.loads(text)
    lines = "\n".join("%s,%d,%.3f" % (d["name"], d["id"], d["v"]) for d in back)
    fields = [line.split(",") for line in lines.splitlines()]
    check += len(text) + sum(len(f[0]) for f in fields)
print(check)
