#!/usr/bin/env bash
# test_pip.sh SRC BUILD [SANITIZE]: `pip install --no-build-isolation ./python`
# offline (--no-index) into a fresh venv, with Debian's setuptools, from a
# copy of the checkout's sources (pip builds in place: the checkout stays
# clean); then the venv's interpreter runs a program under soma with the
# override the package built for itself, and outside soma the package
# says how to run under it.
set -euo pipefail
src=$1
if [ -n "${3:-}" ]; then echo "skipped in the sanitizer builds"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
for d in CMakeLists.txt include src common tools python; do cp -r "$src/$d" "$tmp/src/"; done
rm -rf "$tmp/src/python/build" "$tmp/src/python/"*.egg-info
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-build-isolation --no-index "$tmp/src/python"
unset LD_PRELOAD PYTHONMALLOC PYTHONPATH SOMA_OVERRIDE
cd "$tmp"
lib=$("$tmp/venv/bin/python" -c 'import soma; print(soma.override_path())')
case "$lib" in
    "$tmp/venv/"*/soma/libsoma-override.so) ;;
    *) echo "FAIL: the installed package's override is not its own: $lib"; exit 1 ;;
esac
out=$("$tmp/venv/bin/python" -m soma -c '
import soma, io
assert soma.enabled()
objs = [[i] for i in range(20000)]
rows = soma.types()
lists = sum(r["count"] for r in rows if r["type"] == "list")
assert lists >= 20000, lists
b = io.StringIO(); soma.print_stats(file=b)
assert b.getvalue().startswith("Small block threshold = 512"), b.getvalue()[:80]
print("venv ok", lists)')
echo "$out"
[[ "$out" == "venv ok "* ]] || { echo "FAIL: the venv's soma under python3 -m soma"; exit 1; }
if "$tmp/venv/bin/python" -c 'import soma; soma.stats()' 2>"$tmp/err"; then
    echo "FAIL: stats() outside soma did not raise"; exit 1
fi
grep -q "RuntimeError: soma is not this process's malloc" "$tmp/err" || {
    echo "FAIL: the error outside soma:"; cat "$tmp/err"; exit 1; }
echo "test_pip: ok"
