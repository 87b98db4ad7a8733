#!/usr/bin/env bash
# `make demo`: Slim's main job as it stands. Takes a network trained elsewhere (PyTorch's
# resnet18 and mobilenet_v2, exported to ONNX with BatchNormalization kept), measures it, runs it
# and checks the result against PyTorch's own output, and times it against PyTorch eager.
set -euo pipefail
BUILD=${1:-build}
SLIM=$BUILD/slim
OUT=$BUILD/demo
PY=/usr/bin/python3
mkdir -p "$OUT"
THREADS=$(nproc)

echo "== exporting reference models from PyTorch (tests/fixtures/export_models.py)"
$PY tests/fixtures/export_models.py "$OUT"

for m in resnet18_bn mobilenet_v2_bn; do
  echo
  echo "== slim info $m.onnx --input 3,64,64"
  $SLIM info "$OUT/$m.onnx" --input 3,64,64
  echo "== slim run: Slim's output vs PyTorch's"
  $SLIM run "$OUT/$m.onnx" --in "$OUT/$m.input.npy" --out "$OUT/$m.slim.npy" --threads "$THREADS"
  $PY - "$OUT/$m.output.npy" "$OUT/$m.slim.npy" <<'PYEOF'
import sys, numpy as np
ref, got = np.load(sys.argv[1]), np.load(sys.argv[2])
rel = float(np.abs(ref - got).max() / np.abs(ref).max())
print(f"max relative difference vs PyTorch: {rel:.2e} ({'OK' if rel <= 1e-4 else 'MISMATCH'})")
sys.exit(0 if rel <= 1e-4 else 1)
PYEOF
done

echo
echo "== inference time, Slim vs PyTorch eager ($THREADS threads)"
$PY bench/bench_inference.py --slim "$SLIM" --threads "$THREADS" --runs 10 --cases resnet18_fused:1,mobilenet_v2_fused:1
