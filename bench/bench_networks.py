#!/usr/bin/python3
"""Is Slim's executor as fast as ONNX Runtime on networks it was not tuned on? (issue 20)

Usage (from the repository root, with `slim` built in build/):
  /usr/bin/python3 bench/bench_networks.py [--nets a,b,...] [--batches 1,16] [--precisions
      float,int8] [--threads 2] [--rounds 3] [--runs 20] [--warmup 3] [--profile]
      [--out-dir DIR] [--json-out FILE] [--check]

Networks: torchvision's classification nets that bench_inference.py and bench_quant.py do not
time (mobilenet_v3_large, shufflenet_v2_x1_0, efficientnet_b1, resnet50, resnet101,
densenet169, regnet_y_400mf, mnasnet1_0), random weights from a fixed seed with non-trivial
batch-norm statistics, exported by PyTorch 1.13 as a user would (torch.onnx.export, its default
opset, eval mode so batch norm is folded, a symbolic batch) for 3x64x64 inputs. Their ops are
what the tuned networks lack: HardSwish and HardSigmoid (mobilenet_v3), SiLU as Sigmoid + Mul
and squeeze-excitation (efficientnet, regnet, mobilenet_v3), channel shuffle as Reshape +
Transpose (shufflenet), Concat of every earlier layer (densenet), bottleneck stacks (resnet).

int8 is Slim's own post-training QDQ file (`slim quant ptq`, hist, 8 batches of 16 MNIST digits
written as 64x64 RGB), the same file in both engines.

Each (net, precision, batch) is timed in Slim (`slim bench --json`, which folds batch norm as
ONNX Runtime does at load) and in ONNX Runtime (`node bench/ort_bench.js`, all graph
optimisations), same threads, median of --runs after --warmup; rounds interleave the cases and
the median of the rounds' medians is reported. Goal (issue 20): geometric mean of Slim / ONNX
Runtime <= 1.0 for each precision and batch, and no network above 1.25. With --profile, each
case's time per op type in Slim is printed from `slim bench --profile` (one extra run).

Prints tables on stderr and one JSON object on stdout. Timings on a busy machine are noise.
"""
import argparse
import math
import os
import statistics
import sys
import warnings

from common import REPO, emit_report, run, run_json, tools  # bench/ is on sys.path
from bench_quant import mnist_rgb_folder

ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")
MNIST = os.path.join(REPO, "data", "mnist")
NETS = ("mobilenet_v3_large", "shufflenet_v2_x1_0", "efficientnet_b1", "resnet50", "resnet101",
        "densenet169", "regnet_y_400mf", "mnasnet1_0")
GOAL_GEOMEAN = 1.0
GOAL_WORST = 1.25
INPUT = (3, 64, 64)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def export_net(name, path):
    """torchvision `name` (seeded random weights, random batch-norm statistics) as PyTorch 1.13
    exports it by default, batch symbolic; written under a temp name, then renamed."""
    import torch
    import torchvision
    sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
    from export_models import randomize_bn

    torch.manual_seed(1234)
    torch.set_num_threads(2)
    model = randomize_bn(getattr(torchvision.models, name)(), 7).eval()
    x = torch.randn((1,) + INPUT)
    tmp = "%s.tmp%d" % (path, os.getpid())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, tmp, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    os.replace(tmp, path)


def build_models(slim_bin, nets, precisions, out_dir):
    folder = mnist_rgb_folder(os.path.join(out_dir, "mnist_rgb64"))
    models = {}
    for name in nets:
        m = {"float": os.path.join(out_dir, name + ".onnx")}
        if not os.path.exists(m["float"]):
            log("exporting %s ..." % name)
            export_net(name, m["float"])
        if "int8" in precisions:
            m["int8"] = os.path.join(out_dir, name + "_int8.onnx")
            if not os.path.exists(m["int8"]) or (os.path.getmtime(m["int8"]) <
                                                 os.path.getmtime(m["float"])):
                log("quantizing %s ..." % name)
                run([slim_bin, "quant", "ptq", m["float"], "--data", "folder:" + folder,
                     "--batches", "8", "--batch-size", "16", "--json", "-o", m["int8"]])
        models[name] = m
    return models


def op_profile(slim_bin, path, batch, threads):
    """Slim's mean time per op type and engine in ms per run, largest first."""
    rep = run_json([slim_bin, "bench", path, "--batch", str(batch), "--threads", str(threads),
                    "--runs", "10", "--warmup", "2", "--profile", "--json"])
    by = {}
    for n in rep["profile"]:
        key = "%s/%s" % (n["op_type"], n["engine"])
        by[key] = by.get(key, 0.0) + n["mean_ms"]
    return sorted(by.items(), key=lambda kv: -kv[1]), rep["median_ms"]


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--precisions", default="float,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out-dir")
    ap.add_argument("--json-out")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    nets = [n for n in args.nets.split(",") if n]
    unknown = [n for n in nets if n not in NETS]
    if unknown:
        sys.exit("bench_networks: unknown net(s) %s (known: %s)" % (", ".join(unknown),
                                                                   ", ".join(NETS)))
    precisions = [p for p in args.precisions.split(",") if p]
    if not set(precisions) <= {"float", "int8"}:
        sys.exit("bench_networks: --precisions takes float and/or int8")
    batches = [int(b) for b in args.batches.split(",")]
    slim_bin, node_bin, out_dir = tools("bench_networks", args.slim, args.out_dir)
    models = build_models(slim_bin, nets, precisions, out_dir)

    keys = [(e, n, p, b) for n in nets for p in precisions for b in batches
            for e in ("slim", "ort")]
    samples = {k: [] for k in keys}
    shape = ",".join(str(d) for d in INPUT)
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for (engine, name, prec, batch) in order:
            common = ["--input", shape, "--batch", str(batch), "--threads", str(args.threads),
                      "--runs", str(args.runs), "--warmup", str(args.warmup), "--json"]
            cmd = ([slim_bin, "bench", models[name][prec]] if engine == "slim" else
                   [node_bin, ORT_BENCH, models[name][prec]]) + common
            samples[(engine, name, prec, batch)].append(float(run_json(cmd)["median_ms"]))
        log("round %d/%d done" % (r + 1, args.rounds))
    ms = {k: statistics.median(v) for k, v in samples.items()}

    rows, summary, acceptance = [], [], {}
    log("\n%-20s %-5s %5s | %10s %10s %6s" % ("network", "prec", "batch", "Slim ms", "ORT ms",
                                              "ratio"))
    for prec in precisions:
        for batch in batches:
            ratios = []
            for name in nets:
                s, o = ms[("slim", name, prec, batch)], ms[("ort", name, prec, batch)]
                ratios.append(s / o)
                rows.append({"net": name, "precision": prec, "batch": batch,
                             "slim_ms": round(s, 3), "ort_ms": round(o, 3),
                             "ratio": round(s / o, 3)})
                log("%-20s %-5s %5d | %10.3f %10.3f %6.2f%s" % (
                    name, prec, batch, s, o, s / o, "  > %.2f" % GOAL_WORST
                    if s / o > GOAL_WORST else ""))
            g = geomean(ratios)
            worst = max(ratios)
            summary.append({"precision": prec, "batch": batch, "geomean": round(g, 3),
                            "worst": round(worst, 3)})
            acceptance["%s_b%d" % (prec, batch)] = g <= GOAL_GEOMEAN and worst <= GOAL_WORST
            log("%-20s %-5s %5d | geometric mean %.2f (goal <= %.2f), worst %.2f (goal <= %.2f)"
                % ("all", prec, batch, g, GOAL_GEOMEAN, worst, GOAL_WORST))
    profiles = {}
    if args.profile:
        for name in nets:
            for prec in precisions:
                for batch in batches:
                    top, med = op_profile(slim_bin, models[name][prec], batch, args.threads)
                    key = "%s/%s/b%d" % (name, prec, batch)
                    profiles[key] = [{"op": k, "ms": round(v, 4)} for k, v in top]
                    log("\n%s (%.3f ms): " % (key, med) +
                        ", ".join("%s %.3f" % (k, v) for k, v in top[:8]))
    for k, ok in acceptance.items():
        log("acceptance %s: %s" % (k, "yes" if ok else "NO"))
    report = {"threads": args.threads, "rounds": args.rounds, "runs": args.runs,
              "input": list(INPUT), "cases": rows, "summary": summary,
              "acceptance": acceptance, "acceptance_met": all(acceptance.values())}
    if profiles:
        report["profiles"] = profiles
    emit_report(report, args.json_out)
    return 1 if args.check and not report["acceptance_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
