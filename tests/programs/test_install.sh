#!/usr/bin/env bash
# test_install.sh BUILD_DIR PROG_DIR CC CMAKE [SANITIZE]
#
# Installs the build into a temporary prefix, then builds
# tests/programs/install/prog.c outside the tree against it, twice:
#   1. cc prog.c $(pkg-config --cflags --libs soma), run with LD_LIBRARY_PATH;
#   2. a CMake project with find_package(soma) linking soma::soma (and a second
#      executable linking soma::soma_static).
# The program checks its own dump (blocks in use, Total = arenas * size).
# SANITIZE: the -fsanitize= list the build used; outside programs need it to
# link against the instrumented library.  Exit 77 (skipped) without pkg-config.
set -euo pipefail

build=$1
progdir=$2
cc=$3
cmake=$4
sanitize=${5:-}

if ! command -v pkg-config >/dev/null 2>&1; then
    echo "SKIP: pkg-config is not installed"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soma-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

echo "== cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log"
    fail "cmake --install"
}

# What must be there.
pcfile=$(find "$prefix" -name soma.pc -print -quit)
[ -n "$pcfile" ] || fail "soma.pc not installed"
libdir=$(dirname "$(dirname "$pcfile")")
for f in "$prefix/include/soma.h" "$libdir/libsoma.so" "$libdir/libsoma.a" "$prefix/bin/soma" \
    "$libdir/cmake/soma/somaConfig.cmake" "$libdir/cmake/soma/somaConfigVersion.cmake"; do
    [ -e "$f" ] || fail "$f not installed"
done

flags=()
if [ -n "$sanitize" ]; then
    flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
fi

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
version=$(pkg-config --modversion soma)
header_version=$(sed -n 's/^#define SOMA_VERSION "\(.*\)"$/\1/p' "$prefix/include/soma.h")
[ "$version" = "$header_version" ] || fail "pkg-config version '$version' != header '$header_version'"
cflags=$(pkg-config --cflags soma)
libs=$(pkg-config --libs soma)
echo "cflags: $cflags  libs: $libs  version: $version"
# shellcheck disable=SC2086 # word splitting of the pkg-config output is intended
"$cc" -std=gnu11 -Wall -Wextra "${flags[@]}" -o "$tmp/prog_pc" "$progdir/prog.c" $cflags $libs ||
    fail "compiling with pkg-config"
# It must use the installed library, not some other libsoma.
# (ldd's output is captured first: grep -q closing the pipe early would
# fail the pipeline under pipefail.)
deps=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/prog_pc")
grep -q "$libdir/libsoma.so" <<<"$deps" || {
    echo "$deps"
    fail "prog_pc does not load $libdir/libsoma.so"
}
LD_LIBRARY_PATH=$libdir "$tmp/prog_pc" || fail "prog built with pkg-config"

echo "== find_package(soma)"
mkdir -p "$tmp/proj"
cp "$progdir/CMakeLists.txt" "$progdir/prog.c" "$tmp/proj/"
"$cmake" -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="${flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${flags[*]}" \
    >"$tmp/configure.log" 2>&1 || {
    cat "$tmp/configure.log"
    fail "configuring the find_package project"
}
"$cmake" --build "$tmp/proj/build" >"$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log"
    fail "building the find_package project"
}
# The build tree's RPATH points at the installed library.
deps=$(ldd "$tmp/proj/build/app")
grep -q "$libdir/libsoma.so" <<<"$deps" || {
    echo "$deps"
    fail "app does not load $libdir/libsoma.so"
}
"$tmp/proj/build/app" || fail "app (soma::soma)"
"$tmp/proj/build/app_static" || fail "app_static (soma::soma_static)"
# The Python package (built when Python's headers were there; never in the
# sanitizer builds): installed beside the library, it finds the installed
# override, and runs a program under soma from the installed copy alone.
if [ -z "$sanitize" ] && ls "$build"/python/soma/_soma*.so >/dev/null 2>&1; then
    echo "== the Python package"
    init=$(find "$prefix" -path '*/soma/__init__.py' -print -quit)
    [ -n "$init" ] || fail "the Python package soma not installed"
    site=$(dirname "$(dirname "$init")")
    ls "$site"/soma/_soma*.so >/dev/null || fail "soma/_soma*.so not installed in $site"
    got=$(cd "$tmp" && PYTHONPATH=$site /usr/bin/python3 -m soma -c \
        'import soma; assert soma.enabled(); print(soma.__file__); print(soma.override_path())')
    [ "$got" = "$init"$'\n'"$libdir/libsoma-override.so" ] || {
        echo "$got"
        fail "python3 -m soma from the installed package (expected $init and $libdir/libsoma-override.so)"
    }
fi
echo "install test passed"
