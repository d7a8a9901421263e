#!/usr/bin/env bash
# The whole GPU table in one go (< 8 minutes on one H200): writes benchmarks/results-gpu.md and
# prints it. Run from the repository root on the GPU machine:
#
#   bash benchmarks/gpu.sh            # uses $PYTHON (default python3) with its own torch
#   bash benchmarks/gpu.sh wheels     # on a machine with a package index: fetch the wheels below
#
# The GPU machine has torch and triton but maybe not ganzoo's other dependencies (cattrs, attrs,
# tomli-w, pluggy, rich, safetensors, ...), and no network: `wheels` downloads them (pinned as
# in constraints.txt) into benchmarks/wheels/, which travels with the checkout (it is git-ignored:
# carry it). ganzoo itself is installed --no-deps, so the machine's torch is never replaced.
# torch-fidelity, torchvision and tensorboard are not needed (metrics and logging are off here).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=benchmarks/wheels
# module name -> distribution (pinned where constraints.txt pins it)
DEPS="attrs:attrs==26.1.0 cattrs:cattrs==26.2.1 typing_extensions:typing_extensions tomli_w:tomli-w==1.2.0
pluggy:pluggy==1.7.0 rich:rich==15.0.0 markdown_it:markdown-it-py mdurl:mdurl pygments:pygments
safetensors:safetensors==0.8.0 numpy:numpy PIL:pillow"

if [[ "${1:-}" == "wheels" ]]; then
    mkdir -p "$WHEELS"
    for dep in $DEPS; do "$PY" -m pip download -q --no-deps -d "$WHEELS" "${dep#*:}"; done
    "$PY" -m pip download -q --no-deps -d "$WHEELS" "setuptools==84.2.1"  # the build backend
    ls "$WHEELS"; exit 0
fi

started=$(date +%s)
missing=()
for dep in $DEPS; do
    "$PY" -c "import ${dep%%:*}" 2>/dev/null || missing+=("${dep#*:}")
done
if ((${#missing[@]})); then
    echo "installing from $WHEELS: ${missing[*]}"
    "$PY" -m pip install -q --no-deps --no-index --find-links "$WHEELS" "${missing[@]}"
fi
if ! "$PY" -c "import ganzoo_progan, ganzoo" 2>/dev/null; then
    # setuptools >= 77 builds ganzoo (SPDX license); from the wheels when the machine's is older
    "$PY" -m pip install -q --no-deps --no-index --find-links "$WHEELS" -e . \
        || "$PY" -m pip install -q --no-deps --no-build-isolation -e .
fi
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
export GANZOO_CACHE=${GANZOO_CACHE:-$(mktemp -d)}
"$PY" benchmarks/gpu_table.py --out benchmarks/results-gpu.md --budget "${GANZOO_GPU_BUDGET:-400}"
echo "gpu.sh: $(( $(date +%s) - started )) s"
