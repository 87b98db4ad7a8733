#!/usr/bin/env bash
# `make demo`: Slim's main job as it stands.
#  1. PaddleSlim's tutorial, first step: build MobileNetV1 for 1x28x28 MNIST (10 classes), train
#     one epoch (SGD momentum 0.9, lr 0.1, batch 128), evaluate on the 10,000 test images, print
#     FLOPs and accuracy.
#  2. A network trained elsewhere: PyTorch's resnet18 and mobilenet_v2 exported to ONNX with BN
#     kept; Slim measures them, runs them and checks the outputs against PyTorch's, and times
#     inference against PyTorch.
set -euo pipefail
BUILD=${1:-build}
SLIM=$BUILD/slim
OUT=$BUILD/demo
PY=/usr/bin/python3
THREADS=$(nproc)
mkdir -p "$OUT"

echo "== 1. MobileNetV1 on MNIST (PaddleSlim's tutorial)"
$SLIM zoo mobilenet_v1 --input 1,28,28 --classes 10 --seed 0 -o "$OUT/mobilenet_v1.onnx"
echo "FLOPs: $($SLIM flops "$OUT/mobilenet_v1.onnx") (PaddleSlim's tutorial: 10896832)"
$SLIM train "$OUT/mobilenet_v1.onnx" --data mnist:data/mnist --epochs 1 --batch 128 --lr 0.1 \
  --optimizer momentum --threads "$THREADS" --no-eval -o "$OUT/mobilenet_v1_mnist.onnx"
echo "test set:"
$SLIM eval "$OUT/mobilenet_v1_mnist.onnx" --data mnist:data/mnist --threads "$THREADS" --json

echo
echo "== 2. Models exported by PyTorch (tests/fixtures/export_models.py)"
$PY tests/fixtures/export_models.py "$OUT"
for m in resnet18_bn mobilenet_v2_bn; do
  echo
  echo "-- slim info $m.onnx --input 3,64,64"
  $SLIM info "$OUT/$m.onnx" --input 3,64,64
  echo "-- slim run: Slim's output vs PyTorch's"
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
echo "-- inference time, Slim vs PyTorch (1 thread; see bench/bench_inference.py)"
$PY bench/bench_inference.py --slim "$SLIM" --threads 1 --runs 10 \
  --cases resnet18_fused:1,mobilenet_v2_fused:16
