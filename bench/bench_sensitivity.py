#!/usr/bin/env python3
"""Sensitivity analysis cost against one evaluation, in the same run.

The zoo MobileNetV1 (1x28x28) trained one epoch on the first --train-samples MNIST images; then
`slim eval` on the test set (--eval-runs times, median of its own evaluation seconds) and
`slim sensitivity` over its 13 pointwise convs x 9 ratios (117 cells) on the same images, with
the ratios of each conv sharing the layers before it (Slim's default) and with one whole
evaluation per cell (`--no-share-prefix`, PaddleSlim's way). The ratio is the table's wall time
over (cells x one evaluation); the goal is <= 0.25. Both tables must be equal.
"""
import argparse
import json
import os
import sys
import tempfile
import time

from common import REPO, emit_report, run, run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-samples", type=int, default=6400)
    ap.add_argument("--max-samples", type=int, default=0, help="test images (0: all 10,000)")
    ap.add_argument("--eval-runs", type=int, default=3)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    slim = a.slim
    mnist = "mnist:" + os.path.join(REPO, "data", "mnist")
    threads = ["--threads", str(a.threads)]
    limit = ["--max-samples", str(a.max_samples)] if a.max_samples else []
    with tempfile.TemporaryDirectory() as tmp:
        init = os.path.join(tmp, "init.onnx")
        model = os.path.join(tmp, "model.onnx")
        run([slim, "zoo", "mobilenet_v1", "-o", init])
        run([slim, "train", init, "--data", mnist, "--max-samples", str(a.train_samples),
             "--lr-schedule", "cosine", "--no-eval", "--no-checkpoint", "-o", model] + threads)
        evals = [run_json([slim, "eval", model, "--data", mnist, "--json"] + limit + threads)
                 for _ in range(a.eval_runs)]
        one_eval = sorted(e["seconds"] for e in evals)[len(evals) // 2]
        tables = {}
        for name, extra in (("shared_prefix", []), ("whole_per_cell", ["--no-share-prefix"])):
            out = os.path.join(tmp, name + ".json")
            t0 = time.monotonic()
            run([slim, "sensitivity", model, "--data", mnist, "--params-regex", ".*_sep_weights",
                 "-o", out] + limit + threads + extra)
            seconds = time.monotonic() - t0
            with open(out) as f:
                table = json.load(f)
            cells = sum(len(v) for v in table.values())
            tables[name] = {"seconds": seconds, "cells": cells,
                            "ratio": seconds / (cells * one_eval), "table": table}
            print("%s: %d cells in %.1f s = %.3f of cells x one evaluation (%.2f s)"
                  % (name, cells, seconds, seconds / (cells * one_eval), one_eval),
                  file=sys.stderr)
    same = tables["shared_prefix"]["table"] == tables["whole_per_cell"]["table"]
    report = {"one_eval_s": one_eval, "eval_top1": evals[0]["top1"],
              "samples": evals[0]["samples"], "threads": a.threads, "equal_tables": same,
              "goal": 0.25}
    for name, t in tables.items():
        report[name] = {k: v for k, v in t.items() if k != "table"}
    report["goal_met"] = tables["shared_prefix"]["ratio"] <= 0.25
    emit_report(report, a.json_out)
    if not same:
        sys.exit("the two tables differ")


if __name__ == "__main__":
    main()
