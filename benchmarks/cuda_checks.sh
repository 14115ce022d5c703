#!/usr/bin/env bash
# The CUDA checks, in one run: the model tests (tests/model/test_accelerator.py is collected only
# when CUDA exists), then the offline and serving benchmarks on the GPU. Usage:
#   bash benchmarks/cuda_checks.sh [OUT_DIR]      (the project and its dependencies installed)
set -u
out=${1:-artifacts}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
timeout 150 "$python" -m pytest tests/model -q -p no:cacheprovider 2>&1 | tail -15 | tee "$out/model-tests.txt"
timeout 240 "$python" -m benchmarks.offline --device cuda --skip-ct2 --json "$out/offline-cuda.json"
timeout 150 "$python" -m benchmarks.serving --device cuda --json "$out/serving-cuda.json"
