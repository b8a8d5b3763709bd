#!/usr/bin/env bash
# A rehearsal, on this CPU machine, of the one device `run` of docs/gpu_check.md: the GPU check's
# --cpu-smoke in an environment built like the GPU machine's, so that a missing package or a
# broken Ray pack shows up here instead of costing device minutes.
#
# Like the GPU machine's Python it has torch, torchvision and the scientific stack but no Ray,
# DuckDB or Optuna and not the project installed; Ray comes from ../shared/gpu/pack-ray.sh's pack
# (built here for this Python's version, the GPU machine's is 3.12) through its activate.sh, and
# the project from PYTHONPATH, exactly as the device command runs them. ~6 minutes on 2 CPUs.
# --cpu-smoke runs every part, the capacity part (issue 34, its own device run) included.
#
#   benchmarks/gpu/rehearse.sh              # venv in /tmp/attnmel-device-venv (kept for reruns)
#   REHEARSAL_VENV=/path benchmarks/gpu/rehearse.sh
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
venv=${REHEARSAL_VENV:-/tmp/attnmel-device-venv}
pack=.device-rehearsal
py=${PYTHON:-python3.11}  # the version this machine has torch wheels for on disk

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -c constraints.txt torch torchvision
  # What the GPU machine's image has that the project or Ray Tune import (device/KINDS.md's list).
  "$venv/bin/python" -m pip install -q -c constraints.txt numpy pandas pyarrow pyyaml scikit-learn scipy \
    matplotlib pillow pytest pytest-timeout tqdm psutil msgpack protobuf click filelock aiohttp grpcio \
    packaging requests fsspec statsmodels
fi
for absent in ray duckdb optuna attnmel; do
  if (cd / && "$venv/bin/python" -c "import $absent" 2>/dev/null); then  # from /: the checkout is not on the path
    echo "rehearse: $venv has $absent, which the GPU machine lacks; remove the venv and rerun" >&2; exit 2
  fi
done
pyver=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

# pack-ray.sh for this Python's version, into its own folder (the real .device/ is left alone).
script=$(mktemp); trap 'rm -f "$script"' EXIT
sed -e "s/--python-version 3\.12/--python-version $pyver/" -e "s/^out=\.device\$/out=$pack/" \
  ../shared/gpu/pack-ray.sh > "$script"
grep -q -- "--python-version $pyver" "$script" && grep -q "^out=$pack\$" "$script" \
  || { echo "rehearse: ../shared/gpu/pack-ray.sh changed; adapt this script" >&2; exit 2; }
[ -f "$pack/activate.sh" ] || bash "$script"

mkdir -p .data
[ -d .data/isic2017 ] || cp -r ../shared/isic2017 .data/isic2017
out=$(mktemp -d /tmp/attnmel-rehearsal-XXXXXX)
echo "rehearse: $(du -sh "$pack" | cut -f1) pack, $(du -sh .data | cut -f1) data; report in $out"
export PATH="$venv/bin:$PATH"
# Not inside ( … ): bash 5.2 then execs the sourced file's last command (its python3 check) in
# place of the subshell, and nothing after the source runs. The device command sources it at
# the top level of its shell, as here.
# shellcheck disable=SC1091
source "$pack/activate.sh" || exit 1
python -m benchmarks.gpu --data .data/isic2017 --out "$out" --cpu-smoke 2>&1 | tee "$out/gpu_check.log"
