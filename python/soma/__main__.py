"""python3 -m soma SCRIPT [ARGS] | -c CODE [ARGS] | -m MODULE [ARGS]

Runs a Python program with soma as its malloc: the interpreter is started
again (exec: same process, so exit status and signals are the program's)
with the soma override preloaded and PYTHONMALLOC=malloc, so that the
interpreter's objects are soma's blocks and `import soma` works inside.
"""

import os
import runpy
import sys

USAGE = ("usage: python3 -m soma SCRIPT [ARGS]\n"
         "       python3 -m soma -c CODE [ARGS]\n"
         "       python3 -m soma -m MODULE [ARGS]\n"
         "runs the program with soma as its malloc (LD_PRELOAD, PYTHONMALLOC=malloc)")

_MARK = "SOMA_PYTHON_REEXEC"


def _reexec(args):
    import soma
    lib = soma.override_path()
    if lib is None:
        sys.stderr.write("soma: libsoma-override.so not found: build soma (make) or set "
                         "SOMA_OVERRIDE=/path/to/libsoma-override.so\n")
        sys.exit(2)
    if os.environ.get(_MARK):
        sys.stderr.write("soma: started again with %s preloaded, yet soma is not the "
                         "process's malloc (is LD_PRELOAD ignored here, or is the interpreter "
                         "linked statically?)\n" % lib)
        sys.exit(2)
    env = dict(os.environ)
    pre = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = lib + (" " + pre if pre else "")
    env["PYTHONMALLOC"] = "malloc"
    env[_MARK] = "1"
    # The package must be importable in the new interpreter however it was
    # found in this one: from site-packages it will be again; from anywhere
    # else (the build tree, the current directory) its directory is added,
    # last, so that it shadows nothing the program would import.
    import site
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(soma.__file__)))
    sites = set(site.getsitepackages() + [site.getusersitepackages()])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if pkg_parent not in sites and pkg_parent not in paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [pkg_parent])
    # The interpreter's own flags (-u, -W, -X, -O, -B...) go along, but for
    # -E and -I: the new interpreter must read PYTHONMALLOC and PYTHONPATH.
    import subprocess
    flags = [f for f in subprocess._args_from_interpreter_flags() if f not in ("-E", "-I")]
    argv = [sys.executable] + flags + ["-m", "soma"] + args
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        sys.exit(2 if not args else 0)
    import soma
    if not soma.enabled() or not soma._python_objects_in_soma():
        _reexec(args)
    os.environ.pop(_MARK, None)
    if args[0] == "--":
        args = args[1:]
    if args and args[0] == "-c":
        if len(args) < 2:
            sys.exit(USAGE)
        sys.argv = ["-c"] + args[2:]
        main_mod = sys.modules["__main__"]
        code = compile(args[1], "<string>", "exec")
        g = {"__name__": "__main__", "__builtins__": __builtins__, "__doc__": None,
             "__spec__": None, "__package__": None, "__loader__": main_mod.__loader__}
        exec(code, g)
    elif args and args[0] == "-m":
        if len(args) < 2:
            sys.exit(USAGE)
        sys.argv = [args[1]] + args[2:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args:
        sys.argv = args[:]
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")
    else:
        sys.exit(USAGE)


if __name__ == "__main__":
    main()
