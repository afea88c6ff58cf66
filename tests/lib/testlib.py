"""testlib.py: what the Python-driven tests share (test_snapshots.py,
test_pages.py): installing a missing Debian package when we can, reading a
stream of JSON snapshots, validating them against docs/stats.schema.json,
and a CHECK that counts instead of stopping at the first failure."""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
SCHEMA = os.path.join(ROOT, "docs", "stats.schema.json")
failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    if cond:
        passes += 1
    else:
        failures += 1
        print("FAIL:", what, flush=True)
    return cond


def done(name):
    print(f"{name}: {passes} passed, {failures} failed", flush=True)
    sys.exit(1 if failures else 0)


def need(packages, probe):
    """True if probe() holds, installing the Debian packages first (as root,
    waiting for another test's apt to finish) when it does not."""
    if probe():
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing", " ".join(packages), flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(["apt-get", *lock, "update", "-q"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", *lock, "install", "-y", "-q", *packages], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe()


def importable(module):
    def probe():
        return subprocess.run([sys.executable, "-c", "import " + module],
                              stderr=subprocess.DEVNULL).returncode == 0
    return probe


def snapshots(text):
    """The JSON values of a stream, in order."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = dec.raw_decode(text, i)
        out.append(value)


def validator():
    import jsonschema  # python3-jsonschema
    schema = json.load(open(SCHEMA))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_all(v, values, where):
    for n, value in enumerate(values):
        errors = list(v.iter_errors(value))
        for e in errors[:3]:
            print(f"  {where} #{n}: {list(e.path)}: {e.message[:200]}")
        check(not errors, f"{where} snapshot {n} is valid against the schema")
