#!/usr/bin/env bash
# `make demo`: Slim's main job as it stands.
#  1. PaddleSlim's pruning tutorial end to end on MNIST, as one pipeline config
#     (configs/mnist_prune_tutorial.yaml, run by `slim compress`): build MobileNetV1 for 1x28x28
#     (10 classes), train one epoch (SGD momentum 0.9, lr 0.1 decayed to 0 on a cosine over the
#     epoch, batch 128, the tutorial's reader order: sequential, last partial batch dropped);
#     sensitivity of five separable convs at pruning ratios 0.1/0.2/0.3; per-conv ratios for an
#     accepted top-1 loss of 1%; prune (and the same with every kept count a multiple of 8);
#     fine-tune one epoch (the same recipe); post-training int8 quantization (hist calibration on
#     512 training images), timed on Slim's int8 kernels. Every model is evaluated on the 10,000
#     test images and timed at batch 1. Prints one table (step, top-1, FLOPs, params, file size,
#     latency) and checks the trained top-1 against the tutorial's (0.9665; must be >= 0.965) and
#     the fine-tuned one (0.9763; must be >= 0.974).
#  2. A network trained elsewhere: PyTorch's resnet18 and mobilenet_v2 exported to ONNX with BN
#     kept; Slim measures them, runs them and checks the outputs against PyTorch's, and times
#     inference against PyTorch.
#
# Environment: DEMO_MAX_SAMPLES=N runs part 1 on the first N samples of each split (a quick check
# of the script; the accuracy check is then skipped). Default: the full data sets. Every run
# starts part 1 from scratch (a finished run folder would otherwise be reused).
set -euo pipefail
BUILD=${1:-build}
SLIM=$BUILD/slim
OUT=$BUILD/demo
PY=/usr/bin/python3
THREADS=$(nproc)
MAX_SAMPLES=${DEMO_MAX_SAMPLES:-}
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

if [[ -n $MAX_SAMPLES ]]; then
  if [[ ! $MAX_SAMPLES =~ ^[1-9][0-9]*$ ]]; then
    echo "demo: DEMO_MAX_SAMPLES='$MAX_SAMPLES' is not a positive integer" >&2
    exit 1
  fi
  echo "(reduced run: max-samples $MAX_SAMPLES for train, eval and sensitivity)"
fi
# The config's recipe is the tutorial's optimizer and reader, with the learning rate decayed from
# 0.1 to 0 on a cosine over each epoch (the tutorial keeps 0.1). At a constant 0.1 the last steps
# leave a noisy model: one epoch measured 0.9631 / 0.9722 / 0.9631 / 0.9301 for seeds 0-3
# (PaddleSlim: 0.9665 in its tutorial, 0.9574 in its notebook), decayed 0.9772 / 0.9730 / 0.9708
# / 0.9734; the fine-tuned model 0.9704 at 0.1 against 0.9815 decayed.

echo "== 1. PaddleSlim's pruning tutorial: MobileNetV1 on MNIST (configs/mnist_prune_tutorial.yaml)"
CONFIG=configs/mnist_prune_tutorial.yaml
if [[ -n $MAX_SAMPLES ]]; then
  # The same stages on the first N samples of each split (a quick check of the script).
  CONFIG=$OUT/mnist_prune_tutorial_reduced.yaml
  $PY - configs/mnist_prune_tutorial.yaml "$CONFIG" "$MAX_SAMPLES" "$PWD" <<'PYEOF'
import re, sys
src, dst, n, root = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
text = open(src).read().replace("mnist:../data/mnist", "mnist:%s/data/mnist" % root)
text = text.replace("measure: {eval: true,", "measure: {eval: true, max-samples: %s," % n)
text = re.sub(r"(\n      epochs: 1\n)", r"\1      max-samples: %s\n" % n, text)
text = text.replace("ratios: [0.1, 0.2, 0.3]", "ratios: [0.1, 0.2, 0.3]\n      max-samples: %s" % n)
open(dst, "w").write(text)
PYEOF
fi
# Every run starts from scratch (a finished run folder would otherwise be reused).
rm -rf "$OUT/tutorial"
# The run's own table goes to a file: the one below labels the tutorial's steps.
$SLIM compress "$CONFIG" -o "$OUT/tutorial" > "$OUT/tutorial.txt"

echo
echo "-- PaddleSlim's pruning tutorial, summary (latency: batch 1, all cores)"
# Exit 3 = top-1 below the tutorial's; reported after part 2 so that part still runs. Any other
# failure stops here.
TUTORIAL_RC=0
$PY - "$OUT/tutorial/summary.json" "$MIN_TRAINED_TOP1" "$MIN_TOP1" "$MAX_SAMPLES" <<'PYEOF' || TUTORIAL_RC=$?
import json, sys
summary, min_trained, min_top1, reduced = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
stages = {s["name"]: s["metrics"] for s in json.load(open(summary))["stages"]}
for p in stages["prune"]["pruned"]:
    print("pruned %-24s %4d -> %4d channels (aligned to 8: %d)"
          % (p["master"], p["channels"], p["kept"],
             next(q["kept"] for q in stages["prune-align8"]["pruned"] if q["master"] == p["master"])))
rows = []
for key, label in [("train", "1 epoch (cosine lr)"), ("prune", "pruned, loss 0.01"),
                   ("prune-align8", "pruned, loss 0.01, --align 8"),
                   ("fine-tune", "fine-tuned 1 epoch (cosine lr)"),
                   ("quant", "prune + int8 (PTQ hist)")]:
    m = stages[key]["measure"]
    rows.append((label, "%.4f" % m["eval"]["top1"], "{:,}".format(m["flops"]),
                 "{:,}".format(m["params"]), "{:,}".format(m["file_bytes"]),
                 "%.3f ms" % m["latency"]["median_ms"]))
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
for key, tutorial, required in [("train", 0.9665, min_trained), ("fine-tune", 0.9763, min_top1)]:
    top1 = stages[key]["measure"]["eval"]["top1"]
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
