"""test_pages.py BUILD_DIR [SANITIZE]: every page soma draws, loaded in a real browser.

The pages (soma map -o .svg/.html, soma demo --html, soma run --timeline)
are opened in headless Chromium (Debian's chromium): the DOM must have no
XML parse error, the browser's console must stay silent, and a screenshot
must not be blank (python3-pil counts its colours).  The timeline comes
from a real run: python3 builds a large list, drops it and keeps working;
the samples must show the arenas rising and then reclaimed while it runs,
and the page must mark the reclamation.  A sanitized build (SANITIZE not
empty) cannot preload the override: it draws json_probe's snapshot instead
of python3's and leaves the timeline out.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from testlib import check, done, importable, need, snapshots

BUILD = os.path.abspath(sys.argv[1])
SOMA = os.path.join(BUILD, "soma")
PY = "/usr/bin/python3"
PRELOAD = len(sys.argv) < 3 or sys.argv[2] == ""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

if not need(["chromium"], lambda: os.access(CHROMIUM, os.X_OK)) or \
        not need(["python3-pil"], importable("PIL")):
    print("chromium or python3-pil is missing and cannot be installed: skipped")
    sys.exit(77)
from PIL import Image  # noqa: E402

tmp = tempfile.mkdtemp(prefix="soma-pages-")
BROWSER = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp}/profile"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def load(path, what, width=1400, height=1600):
    """Open the page: no parse error, no console message, a picture."""
    url = "file://" + os.path.abspath(path)
    r = run(BROWSER + ["--dump-dom", url])
    check(r.returncode == 0 and len(r.stdout) > 1000, f"{what}: chromium loaded it")
    check("parsererror" not in r.stdout, f"{what}: no XML/SVG parse error")
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l or "Uncaught" in l]
    check(not console, f"{what}: no console message {console[:3]}")
    png = os.path.join(tmp, os.path.basename(path) + ".png")
    r = run(BROWSER + [f"--screenshot={png}", f"--window-size={width},{height}", url])
    check(r.returncode == 0 and os.path.exists(png), f"{what}: screenshot taken")
    if not os.path.exists(png):
        return
    img = Image.open(png).convert("RGB")
    pixels = list(img.getdata())
    inked = sum(1 for p in pixels if p != (255, 255, 255)) / len(pixels)
    colours = len(set(pixels))
    check(inked > 0.005 and colours >= 12,
          f"{what}: the screenshot is not blank ({inked:.1%} inked, {colours} colours)")


# ---- soma map of a real snapshot: python3's objects at exit ----
snap = os.path.join(tmp, "py.json")
if PRELOAD:
    r = run([SOMA, "run", "--format", "json", "--output", snap, "--", PY, "-c",
             "d = {i: str(i) * (i % 40) for i in range(300000)}; del d\n"
             "keep = [bytes(i % 700) for i in range(20000)]"])
    check(r.returncode == 0, f"soma run --format json of python3: {r.stderr[-300:]}")
else:
    r = run([os.path.join(BUILD, "tests", "json_probe"), "snapshots", snap])
    check(r.returncode == 0, f"json_probe: {r.stderr[-300:]}")
for ext in ("svg", "html"):
    page = os.path.join(tmp, "map." + ext)
    r = run([SOMA, "map", snap, "-o", page])
    check(r.returncode == 0, f"soma map -o .{ext}: {r.stderr}")
    load(page, f"map.{ext}")

# ---- soma demo --html: three phases side by side ----
demo = os.path.join(tmp, "demo.html")
r = run([SOMA, "demo", "--html", demo])
check(r.returncode == 0 and os.path.exists(demo), f"soma demo --html: {r.stderr[-300:]}")
if os.path.exists(demo):
    text = open(demo).read()
    check(text.count("<svg") == 3 and "<script" not in text, "demo page: three pictures, no script")
    load(demo, "demo.html", width=1700, height=1400)

if not PRELOAD:
    print("sanitized build: the timeline (soma run) left out")
    done("test_pages")

# ---- a timeline of a real run: arenas rise, then are reclaimed ----
program = """
import time
x = [str(i) * 4 for i in range(700000)]
time.sleep(0.1)
del x
t, n = time.time(), 0
while time.time() - t < 2.5:
    # Each turn in another size class, so that pools empty and go back:
    # the decay acts on such transitions (src/pool/pool.c); a program that
    # churns the same pools for ever keeps its empty arenas until then.
    y = [str(i) * (1 + n % 8) for i in range(2000)]
    n += 1
"""
timeline = os.path.join(tmp, "timeline.html")
samples = os.path.join(tmp, "samples.json")
r = run([SOMA, "run", "--interval", "10", "--timeline", timeline, "--format", "json",
         "--output", samples, "--", PY, "-c", program])
check(r.returncode == 0 and os.path.exists(timeline), f"soma run --timeline: {r.stderr[-300:]}")
values = snapshots(open(samples).read()) if os.path.exists(samples) else []
during = [v for v in values if v["reason"] == "sample"]
check(len(during) >= 100, f"about every 10 ms over 2 s: {len(during)} samples")
current = [v["arenas_current"] for v in during]
peak = max(current) if current else 0
at_peak = current.index(peak) if current else 0
check(peak >= 20, f"the arenas rose (to {peak})")
check(current and min(current[at_peak:]) <= peak // 4,
      f"and fell while the program ran (to {min(current[at_peak:]) if current else '-'})")
reclaimed = [v["arenas_reclaimed"] for v in during]
check(reclaimed and reclaimed[-1] >= peak // 2, "the samples count them as reclaimed")
if os.path.exists(timeline):
    page = open(timeline).read()
    check(page.count('class="reclaim"') >= 1, "the page marks the reclamation")
    empty = [v["arenas_empty"] for v in during]
    check(empty and max(empty) >= peak // 2 and 'class="arenas-empty"' in page,
          "between the drop and the reclamation, the arenas count as empty, and are drawn")
    check("<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", ""),
          "the timeline is self-contained: no script, no network")
    load(timeline, "timeline.html", height=3000)
done("test_pages")
