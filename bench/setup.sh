#!/usr/bin/env bash
# Set-up for the side-by-side benchmark (npm run bench): Debian's python3-torch (with
# functorch and numpy) for bench/reference_torch.py. Never needed by the tests.
#
#   bash bench/setup.sh             install python3-torch if `import torch` fails
#   bash bench/setup.sh --openblas  also install OpenBLAS (libopenblas0-pthread) when the
#                                   system BLAS is Debian's default netlib reference BLAS,
#                                   which is single-threaded and ~20x slower: without it
#                                   PyTorch is not the strongest baseline it can be
set -euo pipefail
PY=/usr/bin/python3
want_openblas=0
[[ "${1:-}" == "--openblas" ]] && want_openblas=1

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bench/setup.sh: need root to run: $*" >&2
    exit 1
  fi
}

if ! "$PY" -c 'import torch, functorch, numpy' 2>/dev/null; then
  echo "bench/setup.sh: installing python3-torch (Debian) ..."
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy
fi

blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ "$blas" != *openblas* ]]; then
  if [[ $want_openblas -eq 1 ]]; then
    echo "bench/setup.sh: installing OpenBLAS (libopenblas0-pthread) ..."
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread
  else
    echo "bench/setup.sh: note: the system BLAS is ${blas:-unknown} (not OpenBLAS); PyTorch's matmuls will be slow." >&2
    echo "               'bash bench/setup.sh --openblas' installs OpenBLAS for a strong PyTorch baseline." >&2
  fi
fi
"$PY" -c 'import torch; print(f"bench/setup.sh: PyTorch {torch.__version__} ready")'
