#!/usr/bin/env bash
# Builds repynet's release sdist and a manylinux2014 wheel from it, on this
# machine, with no container: zig's C compiler targets glibc 2.17 (the
# manylinux2014 floor; this machine's own glibc would give manylinux_2_34),
# then auditwheel repair (with patchelf) tags the wheel and auditwheel show
# checks the tag.  Release flags (REPYNET_RELEASE=1): no debug info, stripped.
#
#   tools/manylinux_wheel.sh [OUTDIR]      (default OUTDIR: dist)
#
# Environment: PYTHON, the CPython the wheel is for (default python3);
# TOOLS_VENV, where the build tools are installed (default build/wheel-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
PY=${PYTHON:-python3}
TOOLS=${TOOLS_VENV:-build/wheel-tools}
TARGET=x86_64-linux-gnu.2.17
PLATFORM=manylinux2014_x86_64

if [ ! -x "$TOOLS/bin/python" ]; then
    "$PY" -m venv "$TOOLS"
fi
"$TOOLS/bin/pip" install -q build 'auditwheel>=6' 'patchelf>=0.17' 'ziglang>=0.11'
ZIG=$("$TOOLS/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')

rm -rf "$OUT" build/wheel-raw
mkdir -p "$OUT" build/wheel-raw
# The wheel is built from the sdist, so the sdist is proven to build.
"$TOOLS/bin/python" -m build --sdist -o "$OUT" . >build/wheel-raw/sdist.log 2>&1 || { cat build/wheel-raw/sdist.log; exit 1; }
sdist=$(ls "$OUT"/repynet-*.tar.gz)
# CC and LDSHARED both zig: the link must not pick up the build machine's
# glibc or its Python's library path (no RUNPATH in the wheel).
CC="$ZIG cc -target $TARGET" LDSHARED="$ZIG cc -target $TARGET -shared" \
    REPYNET_RELEASE=1 REPYNET_WERROR=1 \
    "$PY" -m pip wheel -q --no-deps --no-cache-dir -w build/wheel-raw "$sdist"
PATH="$(cd "$TOOLS/bin" && pwd):$PATH" \
    "$TOOLS/bin/auditwheel" repair --plat "$PLATFORM" -w "$OUT" build/wheel-raw/repynet-*.whl \
    > build/wheel-raw/repair.log 2>&1 || { cat build/wheel-raw/repair.log; exit 1; }
wheel=$(ls "$OUT"/repynet-*"$PLATFORM"*.whl)
"$TOOLS/bin/auditwheel" show "$wheel" > build/wheel-raw/show.txt
grep -q '"manylinux_2_17_x86_64"' build/wheel-raw/show.txt || {
    cat build/wheel-raw/show.txt
    echo "manylinux_wheel: $wheel is not manylinux2014 (manylinux_2_17)" >&2
    exit 1
}
echo "built $sdist"
echo "built $wheel ($(du -k "$wheel" | cut -f1) KB, manylinux_2_17 by auditwheel show)"
