"""test_python.py BUILD [SANITIZE]: the Python package (python/, built into
BUILD/python by CMake) with the real interpreter, /usr/bin/python3:
  - its API under soma (inside.py, run by python3 -m soma: stats, print_stats,
    snapshots and diff, the type table against hand counts, getsizeof and
    gc.get_objects);
  - outside soma every call that needs it raises RuntimeError saying how to
    run under soma, and enabled() says False;
  - python3 -m soma keeps the program's exit status and its death by signal,
    and runs -c CODE and -m MODULE with their arguments.
Skipped (77) in the sanitizer builds: the override there is instrumented."""
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import testlib  # noqa: E402
from testlib import check  # noqa: E402

build = os.path.abspath(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2]:
    print("skipped: the sanitizer builds' override cannot run in /usr/bin/python3")
    sys.exit(77)
pkg = os.path.join(build, "python")
if not any(n.startswith("_soma") for n in os.listdir(os.path.join(pkg, "soma"))
           if os.path.isdir(os.path.join(pkg, "soma"))):
    print("FAIL: no Python package in %s/soma: install python3-dev and configure again" % pkg)
    sys.exit(1)

PY = "/usr/bin/python3"
env = dict(os.environ, PYTHONPATH=pkg)
for k in ("LD_PRELOAD", "PYTHONMALLOC", "SOMA_OVERRIDE"):
    env.pop(k, None)


def run(args, **kw):
    return subprocess.run([PY] + args, env=env, capture_output=True, text=True, timeout=300, **kw)


# ---- the API under soma ----
r = run(["-m", "soma", os.path.join(HERE, "inside.py"), build])
sys.stdout.write(r.stdout)
sys.stdout.write(r.stderr[-3000:])
check(r.returncode == 0, "inside.py under python3 -m soma: exit %d" % r.returncode)

# ---- outside soma ----
outside = r'''
import soma
assert not soma.enabled(), "enabled() outside soma"
for name, call in [("stats", soma.stats), ("print_stats", soma.print_stats),
                   ("snapshot", soma.snapshot), ("types", soma.types),
                   ("print_types", soma.print_types)]:
    try:
        call()
    except RuntimeError as e:
        msg = str(e)
        assert "python3 -m soma" in msg and "LD_PRELOAD=" in msg and "PYTHONMALLOC=malloc" in msg, msg
        assert "libsoma-override.so" in msg, msg
    else:
        raise AssertionError(name + " did not raise outside soma")
print("outside ok")
'''
r = run(["-c", outside])
check(r.returncode == 0 and "outside ok" in r.stdout,
      "outside soma: RuntimeError with the way to run under soma: %s" % r.stderr[-800:])
# Under the override but with pymalloc still serving objects: the type table
# would be nearly empty; it says why instead.
r = subprocess.run([PY, "-c", "import soma\ntry:\n soma.types()\nexcept RuntimeError as e:\n print('E', e)"],
                   env=dict(env, LD_PRELOAD=os.path.join(build, "libsoma-override.so")),
                   capture_output=True, text=True, timeout=120)
check(r.stdout.startswith("E PYTHONMALLOC"), "types() without PYTHONMALLOC=malloc explains: %r"
      % (r.stdout + r.stderr)[-300:])

# ---- python3 -m soma keeps exit status and signals ----
r = run(["-m", "soma", "-c", "import sys, soma; assert soma.enabled(); sys.exit(7)"])
check(r.returncode == 7, "-c ... sys.exit(7): %d %s" % (r.returncode, r.stderr[-300:]))
r = run(["-m", "soma", "-c", "raise ValueError('boom')"])
check(r.returncode == 1 and "ValueError: boom" in r.stderr, "an uncaught exception: exit 1")
r = run(["-m", "soma", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
check(r.returncode == -signal.SIGTERM, "killed by SIGTERM: %d" % r.returncode)
r = run(["-m", "soma", "-c", "import sys, soma; print(sys.argv, soma.enabled())", "a", "b"])
check(r.stdout.strip() == "['-c', 'a', 'b'] True", "-c CODE ARGS: %r" % r.stdout)
r = run(["-m", "soma", "-m", "json.tool", "--help"])
check(r.returncode == 0 and "json.tool" in r.stdout, "-m MODULE ARGS: %r" % r.stderr[-300:])
script = os.path.join(build, "tests", "py_exit_script.py")
with open(script, "w") as f:
    f.write("import sys, soma\nprint(__name__, sys.argv[1:], soma.enabled())\nsys.exit(int(sys.argv[1]))\n")
r = run(["-m", "soma", script, "3", "x"])
check(r.returncode == 3 and r.stdout.strip() == "__main__ ['3', 'x'] True",
      "SCRIPT ARGS: %d %r" % (r.returncode, r.stdout))
r = run(["-m", "soma"])
check(r.returncode == 2 and "usage" in r.stderr, "no program: usage, exit 2")
r = run(["-O", "-W", "ignore", "-m", "soma", "-c", "import sys; print(sys.flags.optimize, sys.warnoptions)"])
check(r.stdout.strip() == "1 ['ignore']", "the interpreter's flags reach the program: %r" % r.stdout)

# ---- soma present but not the malloc, or not Python's ----
jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
override = os.path.join(build, "libsoma-override.so")
if os.path.exists(jemalloc):
    r = subprocess.run([PY, "-c", "import soma; print(soma.enabled())"], capture_output=True, text=True,
                       env=dict(env, LD_PRELOAD=jemalloc + " " + override, PYTHONMALLOC="malloc"))
    check(r.stdout.strip() == "False", "another allocator preloaded first: enabled() False: %r"
          % (r.stdout + r.stderr)[-300:])
r = subprocess.run([PY, "-c", "import soma\ntry:\n soma.types()\nexcept RuntimeError as e:\n print('E', e)"],
                   env=dict(env, LD_PRELOAD=override, PYTHONMALLOC="malloc_debug"),
                   capture_output=True, text=True, timeout=120)
check(r.stdout.startswith("E PYTHONMALLOC"), "types() under malloc_debug explains: %r"
      % (r.stdout + r.stderr)[-300:])

testlib.done("test_python")
