#!/usr/bin/python3
"""Inference latency of Slim vs PyTorch eager on the same models, in one script run.

Usage (from the repository root):
  make bench
  # or, with the `slim` CLI already built in build/:
  /usr/bin/python3 bench/bench_inference.py --slim build/slim
Options: --threads T (default 2), --runs R (default 20), --warmup W (default 3),
         --cases resnet18_fused:1,mobilenet_v2_fused:16 (default: both models at batch 1 and 16)

Models are tests/fixtures/export_models.py's: torchvision resnet18 and mobilenet_v2 with random
weights, 3x64x64 input, exported with Conv+BN folded into <dir of slim>/fixtures (the ONNX files
Slim runs, shared with the tests). PyTorch runs the same nn.Module in eval mode under
torch.inference_mode() with the same thread count, twice: with Conv+BN fused by
torch.fx.experimental.optimization.fuse (the computation the ONNX file holds, so the ratio
compares like with like) and as is (BN separate, as a PyTorch user would run it; eager CPU BN is
slow enough to make mobilenet_v2 several times slower). The Slim side is `slim bench --json`. Timings on a machine busy with other work are noise: with more
runnable threads than cores, LibTorch's OpenMP barriers stall both sides by ~100 ms.

Prints one JSON line per case:
  {"model", "batch", "threads", "runs", "slim_ms", "torch_ms", "ratio", "torch_unfused_ms"}
with medians in milliseconds; torch_ms is the BN-fused module and ratio = slim_ms / torch_ms. Exits non-zero if either side fails.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import export_models  # noqa: E402  (needs the path above)

DEFAULT_CASES = "resnet18_fused:1,resnet18_fused:16,mobilenet_v2_fused:1,mobilenet_v2_fused:16"


def slim_median_ms(slim_bin, model_path, batch, threads, runs, warmup):
    cmd = [slim_bin, "bench", model_path, "--batch", str(batch), "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode,
                                                       proc.stderr.strip() or proc.stdout))
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(report["median_ms"])


def torch_median_ms(model, batch, threads, runs, warmup):
    import torch

    torch.set_num_threads(threads)
    x = torch.randn((batch,) + export_models.INPUT_SHAPE,
                    generator=torch.Generator().manual_seed(0))
    samples = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"),
                    help="the slim CLI (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="model:batch,... (default: %(default)s)")
    args = ap.parse_args()

    slim_bin = os.path.abspath(args.slim)
    if not os.access(slim_bin, os.X_OK):
        sys.exit("bench_inference: %s is not an executable; build it first (make build)" % slim_bin)
    fixtures = os.path.join(os.path.dirname(slim_bin), "fixtures")
    export_models.export_all(fixtures)

    import torch.fx.experimental.optimization as fx_opt

    models = {}  # name -> (as is, Conv+BN fused)
    for case in args.cases.split(","):
        name, batch = case.split(":")
        batch = int(batch)
        if name not in models:
            model = export_models.make_model(name)
            models[name] = (model, fx_opt.fuse(model))
        model_path = os.path.join(fixtures, name + ".onnx")
        slim_ms = slim_median_ms(slim_bin, model_path, batch, args.threads, args.runs,
                                 args.warmup)
        torch_ms = torch_median_ms(models[name][1], batch, args.threads, args.runs, args.warmup)
        unfused_ms = torch_median_ms(models[name][0], batch, args.threads, args.runs,
                                     args.warmup)
        print(json.dumps({"model": name, "batch": batch, "threads": args.threads,
                          "runs": args.runs, "slim_ms": round(slim_ms, 3),
                          "torch_ms": round(torch_ms, 3), "ratio": round(slim_ms / torch_ms, 3),
                          "torch_unfused_ms": round(unfused_ms, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
