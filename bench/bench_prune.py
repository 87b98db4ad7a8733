#!/usr/bin/python3
"""Is a pruned MobileNetV1 really faster? Unpruned vs pruned to 50% FLOPs, in Slim and ONNX Runtime.

Usage (from the repository root):
  make bench
  # or, with the `slim` CLI already built in build/:
  /usr/bin/python3 bench/bench_prune.py --slim build/slim
Options: --threads T (default 2), --batches 1,64, --rounds N (default 3), --runs R (default 20),
         --warmup W (default 3), --out-dir DIR (default <dir of slim>/bench_prune),
         --json-out FILE (also write the JSON report there), --check (exit 1 when the acceptance
         targets below are missed)

Builds `slim zoo mobilenet_v1 --input 1,28,28 --classes 10 --seed 0` (random weights: speed does
not depend on them) and prunes it twice with `slim prune --flops-target 0.5`, global ranking of
normalised filter importance, once with `--align 8` (kept channel counts multiples of 8) and once
with `--align 1` (PaddleSlim's exact counts). Each of the three models is timed at each batch
size in Slim's executor (`slim bench --json`) and in ONNX Runtime (`node bench/ort_bench.js`,
onnxruntime-node from node_modules, intra-op threads = --threads), both with the same thread
count and median of --runs after --warmup. Runs are interleaved to spread drift across models:
every round times every (batch, model, engine) once, the model order rotates between rounds, and
the reported time is the median of the rounds' medians.

Speed-up = unpruned ms / pruned ms (above 1: the pruned model is faster). Acceptance (issue 4):
with --align 8, >= 1.6 at batch 64 and >= 1.0 at batch 1 in both Slim and ONNX Runtime; the
--align 1 model is timed beside it for comparison, without a target.

Prints a table on stderr and one JSON object on stdout:
  {"threads", "rounds", "runs", "models": {name: {"file", "flops", "params", "align"}},
   "cases": [{"engine", "batch", "model", "ms", "round_ms", "speedup"}],
   "acceptance": {"slim_b64": bool, ...}, "acceptance_met": bool}
Timings on a machine busy with other work are noise: run it with nothing else running.
"""
import argparse
import json
import os
import statistics
import sys

from common import REPO, run, run_json, tools  # bench/, the script directory, is on sys.path

ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")
INPUT = "1,28,28"
CLASSES = 10
MODELS = ("unpruned", "align8", "align1")  # the first is the speed-up's numerator
ENGINES = ("slim", "ort")
TARGET_SPEEDUP = {1: 1.0, 64: 1.6}  # align8 vs unpruned, per batch; others have no target


def shown(path):
    """path relative to the repository when inside it, else absolute."""
    rel = os.path.relpath(path, REPO)
    return path if rel.startswith("..") else rel


def build_models(slim_bin, out_dir):
    """zoo mobilenet_v1 and its two 50%-FLOPs prunes; returns {name: info}."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "mobilenet_v1.onnx")
    run([slim_bin, "zoo", "mobilenet_v1", "--input", INPUT, "--classes", str(CLASSES),
         "--seed", "0", "-o", base])
    info = run_json([slim_bin, "info", base, "--json"])
    models = {"unpruned": {"file": base, "flops": info["flops"], "params": info["params"],
                           "align": None}}
    for align in (8, 1):
        name = "align%d" % align
        path = os.path.join(out_dir, "mobilenet_v1_flops50_%s.onnx" % name)
        rep = run_json([slim_bin, "prune", base, "--flops-target", "0.5", "--align", str(align),
                        "--json", "-o", path])
        models[name] = {"file": path, "flops": rep["flops_after"], "params": rep["params_after"],
                        "align": align, "unaligned_groups": len(rep.get("unaligned", []))}
    return models


def time_once(engine, slim_bin, node_bin, model_path, batch, args):
    common = ["--batch", str(batch), "--threads", str(args.threads), "--runs", str(args.runs),
              "--warmup", str(args.warmup), "--json"]
    if engine == "slim":
        cmd = [slim_bin, "bench", model_path, "--input", INPUT] + common
    else:
        cmd = [node_bin, ORT_BENCH, model_path, "--input", INPUT] + common
    return float(run_json(cmd)["median_ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"),
                    help="the slim CLI (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,64", help="batch sizes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per measurement")
    ap.add_argument("--out-dir", help="where the models go (default: <dir of slim>/bench_prune)")
    ap.add_argument("--json-out", help="also write the JSON report to this file")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the acceptance targets are missed")
    args = ap.parse_args()
    if args.threads < 1 or args.rounds < 1 or args.runs < 1 or args.warmup < 0:
        sys.exit("bench_prune: --threads, --rounds and --runs must be >= 1, --warmup >= 0")
    batches = [int(b) for b in args.batches.split(",")]

    slim_bin, node_bin, out_dir = tools("bench_prune", args.slim, args.out_dir)
    models = build_models(slim_bin, out_dir)
    for name in MODELS:
        m = models[name]
        print("%-8s FLOPs %10d (%.1f%%)  params %8d  %s" % (
            name, m["flops"], 100.0 * m["flops"] / models["unpruned"]["flops"], m["params"],
            shown(m["file"])), file=sys.stderr)

    # samples[(engine, batch, model)] = [median of each round]
    samples = {(e, b, m): [] for e in ENGINES for b in batches for m in MODELS}
    for r in range(args.rounds):
        order = MODELS[r % len(MODELS):] + MODELS[:r % len(MODELS)]
        for batch in batches:
            for name in order:
                for engine in (ENGINES if r % 2 == 0 else ENGINES[::-1]):
                    ms = time_once(engine, slim_bin, node_bin, models[name]["file"], batch, args)
                    samples[(engine, batch, name)].append(ms)
        print("round %d/%d done" % (r + 1, args.rounds), file=sys.stderr, flush=True)

    cases = []
    ms = {k: statistics.median(v) for k, v in samples.items()}
    for engine in ENGINES:
        for batch in batches:
            base = ms[(engine, batch, "unpruned")]
            for name in MODELS:
                t = ms[(engine, batch, name)]
                cases.append({"engine": engine, "batch": batch, "model": name,
                              "ms": round(t, 3),
                              "round_ms": [round(x, 3) for x in samples[(engine, batch, name)]],
                              "speedup": round(base / t, 3)})

    acceptance = {}
    for engine in ENGINES:
        for batch, target in TARGET_SPEEDUP.items():
            if batch in batches:
                s = ms[(engine, batch, "unpruned")] / ms[(engine, batch, "align8")]
                acceptance["%s_b%d" % (engine, batch)] = s >= target
    met = bool(acceptance) and all(acceptance.values())

    print("\n%-6s %5s | %12s | %12s %8s | %12s %8s" % (
        "engine", "batch", "unpruned", "align 8", "speedup", "align 1", "speedup"),
        file=sys.stderr)
    for engine in ENGINES:
        for batch in batches:
            base = ms[(engine, batch, "unpruned")]
            a8, a1 = ms[(engine, batch, "align8")], ms[(engine, batch, "align1")]
            print("%-6s %5d | %9.3f ms | %9.3f ms %7.2fx | %9.3f ms %7.2fx" % (
                engine, batch, base, a8, base / a8, a1, base / a1), file=sys.stderr)
    for key, ok in acceptance.items():
        engine, batch = key.split("_b")
        print("acceptance %s batch %s: align 8 speed-up >= %.1f: %s" % (
            engine, batch, TARGET_SPEEDUP[int(batch)], "yes" if ok else "NO"), file=sys.stderr)

    report = {"threads": args.threads, "rounds": args.rounds, "runs": args.runs,
              "warmup": args.warmup, "input": INPUT, "models": {
                  name: dict(models[name], file=shown(models[name]["file"]))
                  for name in MODELS},
              "cases": cases, "acceptance": acceptance, "acceptance_met": met}
    text = json.dumps(report)
    print(text, flush=True)
    if args.json_out:
        tmp = args.json_out + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json_out)
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
