#!/usr/bin/python3
"""PaddleSlim's combined-strategy rows on Fashion-MNIST (issue 18): distillation ResNet50 ->
MobileNetV1, distillation + int8 QAT, and pruning to 50% fewer FLOPs + int8 QAT, each against
the plainly trained MobileNetV1 of the same seed, over three seeds.

Usage (from the repository root, with `slim` built in build/):
  /usr/bin/python3 bench/bench_combined.py --slim build/slim [--run-dir DIR] [--json-out FILE]

It runs `slim compress configs/fashion_combined.yaml -o RUN_DIR` (build/fashion_combined by
default; finished stages are reused, a killed run resumes), then reads RUN_DIR/summary.json and
prints, per row, the top-1 change in points and the file-size change relative to baseS (the
recipe is in the config's header), per seed and as mean (sample standard deviation, min..max),
beside the seed's row. About 75 minutes on 2 cores, most of it the teacher (5 epochs) and the
distillation epochs.
"""
import argparse
import json
import os
import statistics
import sys

from common import REPO, emit_report, run

# PaddleSlim's rows (ImageNet, MobileNetV1 70.99% top-1): top-1 change in points, size change.
ROWS = [
    ("distill", "distillation ResNet50 -> MobileNetV1", 1.06, None),
    ("dqat", "distillation + int8 QAT", 1.10, -71.76),
    ("pruned", "pruning FLOPs -50% + int8 QAT", -1.71, -86.47),
    ("long", "(reference) plain training, one more epoch", None, None),
]
SEEDS = [0, 1, 2]


def spread(values):
    """'mean (std, min..max)' of a list of numbers, std the sample standard deviation."""
    return "%+.2f (%.2f, %+.2f..%+.2f)" % (statistics.mean(values), statistics.stdev(values),
                                           min(values), max(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    slim = os.path.abspath(a.slim)
    out = a.run_dir or os.path.join(REPO, "build", "fashion_combined")
    config = os.path.join(REPO, "configs", "fashion_combined.yaml")
    run([slim, "compress", config, "-o", out], echo=True)
    summary = json.load(open(os.path.join(out, "summary.json")))
    stages = {s["name"]: s["metrics"]["measure"] for s in summary["stages"]}

    def top1(name):
        return stages[name]["eval"]["top1"]

    teacher = top1("teacher")
    print("teacher ResNet50: top-1 %.4f, %d bytes" % (teacher, stages["teacher"]["file_bytes"]),
          file=sys.stderr)
    report = {"teacher_top1": teacher, "rows": []}
    print("| row | %s | mean (std, min..max) | the seed |" %
          " | ".join("seed %d" % s for s in SEEDS), file=sys.stderr)
    print("| --- |%s --- | --- |" % (" --- |" * len(SEEDS)), file=sys.stderr)
    print("| baseline top-1 (2 epochs) | %s | %.4f | 70.99%% (ImageNet) |" %
          (" | ".join("%.4f" % top1("base%d" % s) for s in SEEDS),
           statistics.mean(top1("base%d" % s) for s in SEEDS)), file=sys.stderr)
    for key, title, seed_points, seed_size in ROWS:
        points = [100 * (top1("%s%d" % (key, s)) - top1("base%d" % s)) for s in SEEDS]
        size = [100 * (stages["%s%d" % (key, s)]["file_bytes"] /
                       stages["base%d" % s]["file_bytes"] - 1) for s in SEEDS]
        flops = [100 * (stages["%s%d" % (key, s)]["flops"] / stages["base%d" % s]["flops"] - 1)
                 for s in SEEDS]
        cells = ["%.4f (%+.2f)" % (top1("%s%d" % (key, s)), p) for s, p in zip(SEEDS, points)]
        seed_text = "" if seed_points is None else "%+.2f%%" % seed_points
        if seed_size is not None:
            seed_text += ", size %+.2f%%" % seed_size
        print("| %s | %s | top-1 %s, size %+.2f%%, FLOPs %+.2f%% | %s |" %
              (title, " | ".join(cells), spread(points), statistics.mean(size),
               statistics.mean(flops), seed_text), file=sys.stderr)
        report["rows"].append({
            "row": key, "title": title,
            "top1": [top1("%s%d" % (key, s)) for s in SEEDS],
            "base_top1": [top1("base%d" % s) for s in SEEDS],
            "points": points, "size_percent": size, "flops_percent": flops,
            "seed_points": seed_points, "seed_size_percent": seed_size,
            "meets_seed": None if seed_points is None else
            (statistics.mean(points) >= seed_points and
             (seed_size is None or statistics.mean(size) <= seed_size))})
    emit_report(report, a.json_out)


if __name__ == "__main__":
    main()
