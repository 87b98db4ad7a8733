#!/usr/bin/env bash
# `make demo`: Slim's main job as it stands.
#  1. PaddleSlim's pruning tutorial end to end on MNIST: build MobileNetV1 for 1x28x28 (10
#     classes), train one epoch (SGD momentum 0.9, lr 0.1 decayed to 0 on a cosine over the
#     epoch, batch 128, the tutorial's reader order: sequential, last partial batch dropped),
#     evaluate on the 10,000 test images; sensitivity of five separable convs at pruning ratios
#     0.1/0.2/0.3; per-conv ratios for an accepted top-1 loss of 1%; prune; evaluate; fine-tune
#     one epoch (the same recipe); evaluate. Prints one table (step, top-1, FLOPs, params, file
#     size, latency at batch 1) and checks the trained top-1 against the tutorial's (0.9665; must
#     be >= 0.965) and the fine-tuned one (0.9763; must be >= 0.974). Then post-training int8
#     quantization of the pruned
#     model (`slim quant ptq`, hist calibration on 512 training images): the "prune + int8" row,
#     timed on Slim's int8 kernels.
#  2. A network trained elsewhere: PyTorch's resnet18 and mobilenet_v2 exported to ONNX with BN
#     kept; Slim measures them, runs them and checks the outputs against PyTorch's, and times
#     inference against PyTorch.
#
# Environment: DEMO_MAX_SAMPLES=N passes --max-samples N to train, eval and sensitivity (a quick
# check of the script; the accuracy check is then skipped). Default: the full data sets.
# Every run starts part 1 from scratch (the sensitivity file is resumable, so a stale one from an
# earlier run would otherwise be reused).
set -euo pipefail
BUILD=${1:-build}
SLIM=$BUILD/slim
OUT=$BUILD/demo
PY=/usr/bin/python3
THREADS=$(nproc)
DATA=mnist:data/mnist
MAX_SAMPLES=${DEMO_MAX_SAMPLES:-}
PARAMS=conv2_1_sep_weights,conv2_2_sep_weights,conv3_1_sep_weights,conv3_2_sep_weights
PARAMS+=,conv4_1_sep_weights
# The gates sit below the worst of this script's seed-0 run under five kernel settings: trained
# 0.9772 / 0.9690 / 0.9722 / 0.9709 / 0.9716 and fine-tuned 0.9821 / 0.9770 / 0.9785 / 0.9783 /
# 0.9782 on an AMD EPYC (AVX-512 VNNI) with OPENBLAS_CORETYPE=Haswell and with OpenBLAS's own
# choice, the same held to AVX2 (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
# OPENBLAS_CORETYPE=Haswell), to AVX-512 without VNNI (ONEDNN_MAX_CPU_ISA=AVX512_CORE
# OPENBLAS_CORETYPE=SkylakeX), and an Intel Xeon (AVX-512 FP16/BF16/VNNI). One training
# trajectory moves by that much with the kernels' rounding; the table shows the tutorial's values
# beside ours.
MIN_TRAINED_TOP1=0.965  # PaddleSlim's tutorial after one epoch: 0.9665
MIN_TOP1=0.974          # PaddleSlim's tutorial after fine-tuning: 0.9763
mkdir -p "$OUT"

SAMPLES=()
if [[ -n $MAX_SAMPLES ]]; then
  if [[ ! $MAX_SAMPLES =~ ^[1-9][0-9]*$ ]]; then
    echo "demo: DEMO_MAX_SAMPLES='$MAX_SAMPLES' is not a positive integer" >&2
    exit 1
  fi
  SAMPLES=(--max-samples "$MAX_SAMPLES")
  echo "(reduced run: --max-samples $MAX_SAMPLES for train, eval and sensitivity)"
fi
# The tutorial's optimizer and reader, with the learning rate decayed from 0.1 to 0 on a cosine
# over each epoch (the tutorial keeps 0.1). At a constant 0.1 the last steps leave a noisy model:
# one epoch measured 0.9631 / 0.9722 / 0.9631 / 0.9301 for seeds 0-3 (PaddleSlim: 0.9665 in its
# tutorial, 0.9574 in its notebook), decayed 0.9772 / 0.9730 / 0.9708 / 0.9734; the fine-tuned
# model 0.9704 at 0.1 against 0.9815 decayed.
TRAIN_ARGS=(--data "$DATA" --epochs 1 --batch 128 --lr 0.1 --lr-schedule cosine
  --optimizer momentum --seed 0 --no-shuffle --drop-last --no-eval --threads "$THREADS"
  "${SAMPLES[@]}")

# measure STEP MODEL: eval, info and batch-1 latency of MODEL as $OUT/step_STEP.*.json.
measure() {
  local step=$1 model=$2
  $SLIM eval "$model" --data "$DATA" --threads "$THREADS" "${SAMPLES[@]}" --json \
    > "$OUT/step_$step.eval.json"
  $SLIM info "$model" --json > "$OUT/step_$step.info.json"
  $SLIM bench "$model" --batch 1 --threads "$THREADS" --runs 50 --warmup 5 --json \
    > "$OUT/step_$step.bench.json"
  local top1
  top1=$($PY -c 'import json, sys; print("%.4f" % json.load(open(sys.argv[1]))["top1"])' \
    "$OUT/step_$step.eval.json")
  echo "top-1 after '$step': $top1"
}

echo "== 1. PaddleSlim's pruning tutorial: MobileNetV1 on MNIST"
rm -f "$OUT"/sens.json "$OUT"/ratios.json "$OUT"/prune.json "$OUT"/step_*.json
echo "-- (a) build, train one epoch (lr 0.1 decayed to 0 on a cosine), evaluate"
$SLIM zoo mobilenet_v1 --input 1,28,28 --classes 10 --seed 0 -o "$OUT/mobilenet_v1.onnx"
FLOPS=$($SLIM flops "$OUT/mobilenet_v1.onnx")  # an assignment, so a failure stops the script
echo "FLOPs: $FLOPS (PaddleSlim's tutorial: 10896832)"
$SLIM train "$OUT/mobilenet_v1.onnx" "${TRAIN_ARGS[@]}" -o "$OUT/mobilenet_v1_mnist.onnx"
measure trained "$OUT/mobilenet_v1_mnist.onnx"

echo "-- (b) sensitivity of $PARAMS at 0.1,0.2,0.3"
$SLIM sensitivity "$OUT/mobilenet_v1_mnist.onnx" --data "$DATA" --params "$PARAMS" \
  --ratios 0.1,0.2,0.3 --threads "$THREADS" "${SAMPLES[@]}" -o "$OUT/sens.json"
cat "$OUT/sens.json"; echo

echo "-- (c) ratios for an accepted top-1 loss of 1%"
$SLIM ratios --sens "$OUT/sens.json" --loss 0.01 --json | tee "$OUT/ratios.json"

echo "-- (d) prune with those ratios, evaluate"
$SLIM prune "$OUT/mobilenet_v1_mnist.onnx" --sens "$OUT/sens.json" --loss 0.01 --json \
  -o "$OUT/mobilenet_v1_pruned.onnx" > "$OUT/prune.json"
$PY - "$OUT/prune.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
for p in r["pruned"]:
    print("pruned %-24s %4d -> %4d channels" % (p["master"], p["channels"], p["kept"]))
for s in r["skipped"]:
    print("skipped %s: %s" % (s["params"][0], s["reason"]))
print("FLOPs %d -> %d (%.2f%% fewer)" % (r["flops_before"], r["flops_after"],
                                        100.0 * (1 - r["flops_after"] / r["flops_before"])))
PYEOF
measure pruned "$OUT/mobilenet_v1_pruned.onnx"

echo "-- (e) fine-tune one epoch (the same recipe), evaluate"
$SLIM train "$OUT/mobilenet_v1_pruned.onnx" "${TRAIN_ARGS[@]}" -o "$OUT/mobilenet_v1_finetuned.onnx"
measure fine-tuned "$OUT/mobilenet_v1_finetuned.onnx"

echo "-- (f) post-training int8 quantization of the pruned model (hist, 32 batches of 16)"
$SLIM quant ptq "$OUT/mobilenet_v1_finetuned.onnx" --data "$DATA" --algo hist --batches 32 \
  --threads "$THREADS" --table "$OUT/mobilenet_v1_int8.scales.json" \
  -o "$OUT/mobilenet_v1_pruned_int8.onnx"
measure int8 "$OUT/mobilenet_v1_pruned_int8.onnx"

echo
echo "-- PaddleSlim's pruning tutorial, summary (latency: slim bench, batch 1, $THREADS threads)"
# Exit 3 = top-1 below the tutorial's; reported after part 2 so that part still runs. Any other
# failure stops here.
TUTORIAL_RC=0
$PY - "$OUT" "$MIN_TRAINED_TOP1" "$MIN_TOP1" "$MAX_SAMPLES" <<'PYEOF' || TUTORIAL_RC=$?
import json, os, sys
out, min_trained, min_top1, reduced = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
steps = [("trained", "1 epoch (cosine lr)"), ("pruned", "pruned, loss 0.01"),
         ("fine-tuned", "fine-tuned 1 epoch (cosine lr)"), ("int8", "prune + int8 (PTQ hist)")]
rows = []
for key, label in steps:
    load = lambda kind: json.load(open(os.path.join(out, "step_%s.%s.json" % (key, kind))))
    e, i, b = load("eval"), load("info"), load("bench")
    rows.append((label, "%.4f" % e["top1"], "{:,}".format(i["flops"]), "{:,}".format(i["params"]),
                 "{:,}".format(i["file_bytes"]), "%.3f ms" % b["median_ms"]))
head = ("step", "top-1", "FLOPs", "params", "file bytes", "latency b1")
widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
# Step names left-aligned, numbers right-aligned.
line = lambda r: "| " + " | ".join(v.ljust(w) if c == 0 else v.rjust(w)
                                   for c, (v, w) in enumerate(zip(r, widths))) + " |"
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
if reduced:
    print("(reduced run: accuracy checks against the tutorial skipped)")
    sys.exit(0)
ok = True
for key, tutorial, required in [("trained", 0.9665, min_trained), ("fine-tuned", 0.9763, min_top1)]:
    top1 = json.load(open(os.path.join(out, "step_%s.eval.json" % key)))["top1"]
    print("%s top-1 %.4f, tutorial %.4f, required >= %.3f: %s"
          % (key, top1, tutorial, required, "OK" if top1 >= required else "BELOW"))
    ok = ok and top1 >= required
sys.exit(0 if ok else 3)
PYEOF
[[ $TUTORIAL_RC -eq 0 || $TUTORIAL_RC -eq 3 ]] || exit "$TUTORIAL_RC"

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

if [[ $TUTORIAL_RC -ne 0 ]]; then
  echo "demo: the pruning tutorial's fine-tuned top-1 is below $MIN_TOP1 (see the table above)" >&2
  exit 1
fi
