#!/usr/bin/env bash
# Debian packages the tests use: headless Chromium (report and notebook screenshots), Jupyter
# (running the notebooks headless), and a C compiler with OpenBLAS (the native kernels).
# Skips what is already installed, so a second call costs a few checks. Uses sudo when not
# root. With --best-effort (npm test's pretest) a machine where nothing can be installed (no
# sudo, no network) gets the exact command to run and the tests still run: those that need a
# missing package fail, naming it. Without it, failing to install is an error (CI).
set -uo pipefail
best_effort=0
[ "${1:-}" = --best-effort ] && best_effort=1
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c "import nbconvert, nbclient, ipykernel, jupyter_client" 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel)
command -v gcc >/dev/null || need+=(gcc)
[ "$(dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null)" = "install ok installed" ] || need+=(libopenblas-dev)
[ ${#need[@]} -eq 0 ] && exit 0

command_line="sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
elif command -v sudo >/dev/null && [ -t 0 ]; then
  SUDO=(sudo) # asks for the password on this terminal
else
  SUDO=(none)
fi
installed=1
if [ "${SUDO[0]:-}" = none ]; then
  installed=0
  why="not root, and sudo is missing or needs a password this run cannot ask for"
else
  echo "installing Debian packages: ${need[*]}"
  if ! "${SUDO[@]}" apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"; then
    installed=0
    why="apt-get failed (no network or no package source?)"
  fi
fi
if [ $installed = 0 ]; then
  echo "tda-lab: cannot install the Debian packages the tests need ($why). Run:" >&2
  echo "  $command_line" >&2
  if [ $best_effort = 1 ]; then
    echo "tda-lab: running the tests anyway; those that need these packages will fail, naming them." >&2
    exit 0
  fi
  exit 1
fi
