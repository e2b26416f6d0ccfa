#!/usr/bin/env bash
# Debian packages the tests use: a C compiler and OpenBLAS (the native BLAS kernels that
# `npm install` builds, native/), headless Chromium (report and notebook screenshots) and
# Jupyter (running the notebooks headless). Skips what is already installed.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c "import nbconvert, nbclient, ipykernel, jupyter_client" 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
