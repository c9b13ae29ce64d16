#!/usr/bin/env bash
# The first-GPU check: every `cuda`/`tensorrt`-marked test, the pipeline benchmark and the CRF benchmark, each
# under its own time limit (at most 9 minutes in all: 100+20+180+90+60+90 s), with their JSON under
# benchmarks/results/gpu_check/ and a summary there in summary.json (each step's exit code and seconds).
#
#     bash benchmarks/gpu_check.sh            # from anywhere; run from a clone of this repository
#
# Assumptions (checked, and said in one line when they fail):
#   * an NVIDIA GPU and driver (nvidia-smi works); Python >= 3.10 as $PYTHON (default python3), ideally a venv;
#   * torch with CUDA already installed, or PyPI reachable: with INSTALL=1 the script installs torch from
#     $TORCH_INDEX (default the CUDA 12.8 wheels; CI's pinned torch==2.13.0 is the CPU build), this project with
#     its dev extra, and TensorRT + cuda-python for the driver's CUDA major (edgeseg[tensorrt-cu12] or -cu13);
#     without INSTALL=1 nothing is installed and what is missing shows up as skipped tests;
#   * on a Jetson, TensorRT comes from JetPack (python3-libnvinfer) and INSTALL=1 installs edgeseg[jetson] only.
# A step that runs past its limit is stopped and recorded as rc 124; the script goes on with the next step and
# exits 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUT=benchmarks/results/gpu_check
SUMMARY=()
FAILED=0

step() {  # step NAME LIMIT_S COMMAND... : run with a time limit, record rc and seconds
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    echo "== $name (limit ${limit}s): $*"
    timeout --signal=TERM --kill-after=10 "$limit" "$@"
    rc=$?
    local seconds=$(( $(date +%s) - t0 ))
    echo "== $name: rc $rc in ${seconds}s"
    SUMMARY+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $seconds}")
    [ "$rc" -eq 0 ] || FAILED=1
}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi fails): nothing to check" >&2
    exit 1
fi
nvidia-smi -L
mkdir -p "$OUT"
CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)

if [ "${INSTALL:-0}" = "1" ]; then
    if [ -f /etc/nv_tegra_release ]; then
        EXTRA=jetson
    elif [ "${CUDA_MAJOR:-12}" -ge 13 ]; then
        EXTRA=tensorrt-cu13
    else
        EXTRA=tensorrt-cu12
    fi
    step install 100 bash -c "$PY -m pip install --quiet torch==2.13.0 --index-url ${TORCH_INDEX:-https://download.pytorch.org/whl/cu128} \
        && $PY -m pip install --quiet -e '.[dev,$EXTRA]'"
fi

step environment 20 "$PY" -c "import torch, edgeseg; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'| edgeseg', edgeseg.__version__); from edgeseg.runtime.backends import backend_missing; \
print('tensorrt:', backend_missing('tensorrt') or 'usable')"

# every cuda/tensorrt test, one process (the GPU tests share the device), results as JUnit XML and JSON
step tests 180 "$PY" -m pytest -q -n 0 -p no:cacheprovider -m "cuda or tensorrt" -rs --junitxml="$OUT/tests.xml"
"$PY" - "$OUT/tests.xml" "$OUT/tests.json" <<'EOF' || true
import json, sys, xml.etree.ElementTree as ET
cases = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
    reason = next((c.get("message", "") for c in case if c.tag in ("failure", "error", "skipped")), "")
    cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                  "seconds": float(case.get("time", 0)), "reason": reason[:300]})
json.dump({"tests": cases}, open(sys.argv[2], "w"), indent=1)
EOF

# the pipeline with 1/2/4 frames in flight on the GPU (torch fp16, then with CUDA graphs), and the CRF's rows
step pipeline 90 "$PY" benchmarks/pipeline.py --device cuda --size 1024x2048 --precision fp16 --frames 150 \
    --out "$OUT/pipeline_cuda.json"
step pipeline-graph 60 "$PY" benchmarks/pipeline.py --device cuda --size 1024x2048 --precision fp16 --frames 150 \
    --cuda-graph --out "$OUT/pipeline_cuda_graph.json"
step crf 90 "$PY" benchmarks/crf.py --quality-images 5 --out "$OUT/crf_cuda.json"

( IFS=,; echo "{\"date\": \"$(date -u +%FT%TZ)\", \"steps\": [${SUMMARY[*]}]}" ) > "$OUT/summary.json"
echo "summary: $OUT/summary.json"
exit "$FAILED"
