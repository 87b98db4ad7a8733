#!/usr/bin/env python3
"""Distributed training on this machine, and a projection to clusters.

1. One MNIST training epoch of the zoo MobileNetV1 (batch 128, SGD momentum, lr 0.1): two ranks of
   one thread each (`slim launch --nproc 2 --threads 1 -- slim train`) against one process with
   two threads (`slim train --threads 2`), same global batch and seed; ratio = 2 ranks / 1 process.
2. The gradient all-reduce per step (`bench_allreduce` under `slim launch`: the buckets data-parallel
   training uses) for MobileNetV1 and ResNet-50 at 3x224x224 with 1000 classes, two ranks on
   loopback; and one process's forward + backward step at --batch per rank for both.
3. A projection to 8 and 64 machines over 10 and 100 Gbit/s links (ring all-reduce:
   2 (n - 1) / n of the gradient bytes through each machine's link, plus 2 (n - 1) hops of
   --hop-us latency; a machine reduces no faster than Gloo did here on loopback), without and
   with the all-reduce overlapped with backward; for machines like this one and for machines
   --faster times faster at computing (e.g. 20: a 40-core server), whose compute step shrinks
   while the all-reduce does not.

Prints one JSON line (and --json-out FILE); the projection also as a table on stderr.
"""
import argparse
import json
import os
import sys
import tempfile

from common import REPO, emit_report, run, run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--bench-allreduce", default=os.path.join(REPO, "build", "bench_allreduce"))
    ap.add_argument("--max-samples", type=int, default=0, help="epoch of the first N images")
    ap.add_argument("--batch", type=int, default=32, help="per-rank batch of the projection")
    ap.add_argument("--steps", type=int, default=20, help="all-reduce steps (median)")
    ap.add_argument("--compute-steps", type=int, default=3)
    ap.add_argument("--hop-us", type=float, default=50.0, help="latency per ring hop (assumed)")
    ap.add_argument("--faster", default="1,20",
                    help="compute speed of the projected machines relative to this one")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    slim = a.slim
    if not os.path.exists(a.bench_allreduce):  # not part of `make build`
        run(["cmake", "--build", os.path.dirname(a.bench_allreduce), "--target",
             "bench_allreduce"], echo=True)
    mnist = "mnist:" + os.path.join(REPO, "data", "mnist")
    report = {"machine_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "mobilenet_v1_mnist.onnx")
        run([slim, "zoo", "mobilenet_v1", "-o", model])
        common = ["train", model, "--data", mnist, "--epochs", "1", "--batch", "128", "--lr", "0.1",
                  "--no-eval", "--no-checkpoint", "--json"]
        if a.max_samples:
            common += ["--max-samples", str(a.max_samples)]
        one = run_json([slim] + common + ["--threads", "2", "-o", os.path.join(tmp, "one.onnx")])
        two = run_json([slim, "launch", "--nproc", "2", "--threads", "1", "--", "slim"] + common +
                       ["-o", os.path.join(tmp, "two.onnx")])
        e1, e2 = one["epochs"][0]["seconds"], two["epochs"][0]["seconds"]
        report["mnist_epoch"] = {
            "samples": one["epochs"][0]["samples"],
            "one_process_2_threads_s": e1, "two_ranks_1_thread_s": e2, "ratio": e2 / e1,
            "one_loss": one["epochs"][0]["train_loss"], "two_loss": two["epochs"][0]["train_loss"]}
        print("MNIST epoch: 1 process x 2 threads %.1f s, 2 ranks x 1 thread %.1f s, ratio %.2f"
              % (e1, e2, e2 / e1), file=sys.stderr)

        nets = {}
        for name, zoo in (("mobilenet_v1", "mobilenet_v1"), ("resnet50", "resnet50")):
            path = os.path.join(tmp, name + ".onnx")
            run([slim, "zoo", zoo, "--input", "3,224,224", "--classes", "1000", "-o", path])
            ar = run_json([slim, "launch", "--nproc", "2", "--threads", "1", "--",
                           a.bench_allreduce, path, "--steps", str(a.steps)])
            comp = run_json([a.bench_allreduce, path, "--compute", "--batch", str(a.batch),
                             "--steps", str(a.compute_steps), "--threads", "2"])
            nets[name] = {"params": ar["params"], "megabytes": ar["megabytes"],
                          "buckets": ar["buckets"], "allreduce_ms_2_ranks": ar["allreduce_ms"],
                          "loopback_busbw_GBps": ar["busbw_GBps"],
                          "compute_step_ms": comp["step_ms"], "batch": a.batch}
            print("%s: %.1f MB of gradients, all-reduce %.1f ms/step on 2 ranks (loopback, "
                  "%.2f GB/s), compute %.0f ms/step at batch %d"
                  % (name, ar["megabytes"], ar["allreduce_ms"], ar["busbw_GBps"], comp["step_ms"],
                     a.batch), file=sys.stderr)
        report["allreduce"] = nets

    # Projection.
    rows = []
    speeds = [float(f) for f in a.faster.split(",")]
    for name, n in nets.items():
        for faster in speeds:
            for machines in (8, 64):
                for gbit in (10, 100):
                    bw = min(gbit / 8.0, n["loopback_busbw_GBps"])  # GB/s
                    moved = 2.0 * (machines - 1) / machines * n["megabytes"] / 1000.0  # GB/link
                    comm_ms = moved / bw * 1000.0 + 2 * (machines - 1) * a.hop_us / 1000.0
                    comp = n["compute_step_ms"] / faster
                    serial = comp / (comp + comm_ms)
                    overlap = comp / max(comp, comm_ms)
                    rows.append({"model": name, "faster": faster, "machines": machines,
                                 "gbit": gbit, "effective_GBps": bw, "allreduce_ms": comm_ms,
                                 "compute_ms": comp, "efficiency_no_overlap": serial,
                                 "efficiency_overlap": overlap,
                                 "speedup_no_overlap": machines * serial,
                                 "speedup_overlap": machines * overlap})
    report["projection"] = {"hop_us": a.hop_us, "rows": rows}
    print("%-13s %6s %8s %6s %10s %10s %12s %12s"
          % ("model", "faster", "machines", "Gbit/s", "allreduce", "compute", "eff serial",
             "eff overlap"), file=sys.stderr)
    for r in rows:
        print("%-13s %6g %8d %6d %8.0f ms %8.0f ms %11.0f%% %11.0f%%"
              % (r["model"], r["faster"], r["machines"], r["gbit"], r["allreduce_ms"],
                 r["compute_ms"],
                 100 * r["efficiency_no_overlap"], 100 * r["efficiency_overlap"]), file=sys.stderr)
    emit_report(report, a.json_out)


if __name__ == "__main__":
    main()
