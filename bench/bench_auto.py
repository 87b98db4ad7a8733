#!/usr/bin/python3
"""Auto-compression to a latency budget (issue 18): the demo's MobileNetV1 (MNIST, one epoch)
compressed with `slim compress --auto --max-latency-ms X --max-loss 0.01`, X a share of the
trained float model's batch-1 latency.

Usage (from the repository root, with `slim` built in build/):
  /usr/bin/python3 bench/bench_auto.py --slim build/slim [--share 0.25] [--max-loss 0.01]
Options: --run-dir DIR (build/bench_auto), --json-out FILE

1. `slim compress configs/mnist_auto.yaml -o RUN_DIR` trains the float model (reused when done).
2. Its batch-1 latency is the median of three `slim bench` runs (300 runs each, 2 threads),
   and X = share * that.
3. `slim compress ... --auto --max-latency-ms X --max-loss L` runs the ladder (README,
   "Pipelines"). Its candidates (top-1, loss, latency, size, why each missed) are printed, and
   whether one met the budget.
Run it with nothing else running: the candidates' latencies are measured on this machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from common import REPO, emit_report, run, run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--share", type=float, default=0.25)
    ap.add_argument("--max-loss", type=float, default=0.01)
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    slim = os.path.abspath(a.slim)
    out = a.run_dir or os.path.join(os.path.dirname(slim), "bench_auto")
    config = os.path.join(REPO, "configs", "mnist_auto.yaml")
    run([slim, "compress", config, "-o", out], echo=True)
    trained = os.path.join(out, "01-train", "model.onnx")
    times = [run_json([slim, "bench", trained, "--batch", "1", "--threads", "2", "--runs", "300",
                       "--warmup", "20", "--json"])["median_ms"] for _ in range(3)]
    float_ms = statistics.median(times)
    budget = a.share * float_ms
    print("float model: %.4f ms at batch 1 (runs: %s); budget %.4f ms" %
          (float_ms, ", ".join("%.4f" % t for t in times), budget), file=sys.stderr)
    proc = subprocess.run([slim, "compress", config, "-o", out, "--auto", "--max-latency-ms",
                           "%.6f" % budget, "--max-loss", str(a.max_loss)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    error = proc.stderr.strip().splitlines()[-1] if proc.returncode else None
    cands = json.load(open(os.path.join(out, "02-auto", "candidates.json")))
    for c in cands["candidates"]:
        print("%-12s top-1 %.4f loss %6.2f%% latency %s size %9d  %s" %
              (c["name"], c["top1"], 100 * c["loss"],
               "%.4f ms" % c["latency_ms"] if "latency_ms" in c else "-", c["file_bytes"],
               "meets" if c["meets"] else c.get("why_not", "")), file=sys.stderr)
    print("result: %s" % (error or "met by " + json.load(open(
        os.path.join(out, "summary.json")))["stages"][-1]["metrics"]["chosen"]), file=sys.stderr)
    emit_report({"float_ms": float_ms, "float_runs_ms": times, "share": a.share,
                 "budget_ms": budget, "max_loss": a.max_loss, "met": proc.returncode == 0,
                 "error": error, "candidates": cands["candidates"], "float": cands["float"]},
                a.json_out)


if __name__ == "__main__":
    main()
