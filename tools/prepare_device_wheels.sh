#!/usr/bin/env bash
# Fill a folder of wheels (default .whl/, git-ignored) with the build requirements that the
# GPU machine lacks, for `tools/device_check.sh --wheels .whl`.  Run it on a machine with
# network access; the GPU machine has none.
#
#   bash tools/prepare_device_wheels.sh [--dest DIR] [NAME==VERSION ...]
#
# The GPU machine (Python 3.12, x86-64) has scikit-build-core, Cython, CMake, ninja and NumPy
# but not cython-cmake, so that is the one wheel it needs.  scikit-build-core is fetched too, as
# a fallback in case the machine's copy is older than pyproject.toml asks for (the check
# installs a wheel only for a requirement that is missing or too old).  Both are pure Python
# (py3-none-any), so the platform tags below only matter for extra names given on the command
# line.  The exact command, per name:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl cython-cmake==0.3.0
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.whl
PKGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) DEST=${2:?--dest needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "prepare_device_wheels.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) PKGS+=("$1"); shift ;;
  esac
done
[ ${#PKGS[@]} -gt 0 ] || PKGS=("cython-cmake==0.3.0" "scikit-build-core==1.1.2")

mkdir -p "$DEST"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DEST" "${PKGS[@]}"
echo "wheels in $DEST:"
ls -l "$DEST"
