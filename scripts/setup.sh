#!/usr/bin/env bash
# Set up a fresh machine: virtual environment in .venv, dependencies, build of naslid_ext._C.
#   NASLID_CUDA=auto|0|1 (default auto) decides whether the CUDA kernels are compiled.
#   The build log is kept in build/build.log; nvcc's per-kernel resource usage is printed.
#   Exits non-zero when naslid_ext._C does not import (unless NASLID_ALLOW_TORCH_FALLBACK=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# (pip warns about each local package index folder it cannot find: noise, filtered out)
quiet_pip() { .venv/bin/pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
quiet_pip install -q --upgrade pip
quiet_pip install -q -r requirements-test.txt
mkdir -p build
echo "building naslid_ext (NASLID_CUDA=${NASLID_CUDA:-auto}) ..."
if ! NASLID_PTXAS_VERBOSE=1 .venv/bin/pip install --no-build-isolation --no-deps -v -e . > build/build.log 2>&1; then
  tail -n 60 build/build.log
  echo "setup.sh: building naslid_ext failed (full log: build/build.log)" >&2
  exit 1
fi
grep -E "setup.py: building" build/build.log | head -n 1 || true
if grep -q "ptxas info" build/build.log; then
  echo "nvcc per-kernel resource usage (registers, spills):"
  grep -E "ptxas info    : (Compiling entry|Function properties|Used)|spill" build/build.log \
    | grep -vE "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" | sed 's/^ *//' || true
fi
# The compiled kernels must load: a build whose naslid_ext._C does not import (ABI mismatch, missing
# library) fails here instead of falling back to plain torch without a word.
# NASLID_ALLOW_TORCH_FALLBACK=1 accepts the fallback on purpose (CI never sets it).
.venv/bin/python - <<'PY'
import os, sys
import naslid, naslid_ext
if not naslid_ext.ext_loaded():
    err = naslid_ext.load_error()
    msg = (f"setup.sh: the compiled extension naslid_ext._C failed to import "
           f"({type(err).__name__}: {err}); build log: build/build.log")
    if os.environ.get("NASLID_ALLOW_TORCH_FALLBACK") != "1":
        sys.exit(msg)
    print(msg + " -- NASLID_ALLOW_TORCH_FALLBACK=1: continuing with the plain-torch fallback", file=sys.stderr)
print("naslid_ext", naslid_ext.__version__, "ready" if naslid_ext.ext_loaded() else "ready (plain-torch fallback)")
PY
