"""bench/python/build_drop.py [SECONDS [COUNT]]: a Python program that builds
a large structure, drops it, and carries on; does its memory go back?

Builds COUNT records (default 400,000: a dict of an int, two strings, a
tuple and a short list each; about 240 MiB resident at the peak), drops them (del, then
gc.collect()), then runs SECONDS more (default 3) doing a little work every
millisecond (a few small objects replacing the oldest in a ring of 100 live
ones).  Prints one JSON line: the resident set (VmRSS of /proc/self/status,
KiB) before the build, at its peak (VmHWM), right after the drop and at the
end, and the build's result (the same under every allocator).
bench/memory_return.py runs it under pymalloc and under each malloc.
"""
import gc
import json
import sys
import time


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def build(count):
    records = []
    for i in range(count):
        name = f"record-{i:07d}"
        records.append({"id": i, "name": name, "key": name[-4:] + str(i % 7919),
                        "pair": (i, i * 0.5), "tags": [i % 3, str(i % 101)]})
    return records


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400000
    pre = status("VmRSS")
    records = build(count)
    result = sum(r["id"] + len(r["key"]) for r in records) % 1000003
    peak = status("VmHWM")
    del records
    gc.collect()
    dropped = status("VmRSS")
    ring, t = [None] * 100, 0
    end_at = time.monotonic() + seconds
    while time.monotonic() < end_at:
        for _ in range(4):
            ring[t % 100] = (t, str(t), [t])
            t += 1
        time.sleep(0.001)
    end = status("VmRSS")
    print(json.dumps({"pre_kib": pre, "peak_kib": peak, "dropped_kib": dropped, "end_kib": end,
                      "result": result}))


if __name__ == "__main__":
    main()
