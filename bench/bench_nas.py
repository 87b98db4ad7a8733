#!/usr/bin/python3
"""The seed's NAS result, ported to Fashion-MNIST: search MobileNetV2 under 80% of the initial
network's latency, then retrain the best found and the initial network with one final recipe.

Usage (from the repository root, with `slim` built in build/ and data/fashion set up):
  /usr/bin/python3 bench/bench_nas.py --slim build/slim [--steps 30] [--out-dir DIR]
Options: --threads T (2), --steps N (30), --latency-share S (0.8), --search-epochs E (1),
         --search-samples N (10000), --val-samples N (5000), --final-epochs E (5),
         --seeds 0,1 (final recipe seeds), --rounds R (5), --runs N (100), --json-out FILE

1. The initial tokens (`slim nas export`, torchvision's MobileNetV2 layout at 1x28x28, 10
   classes) are timed with `slim bench` at batch 1 (median of --runs, median over --rounds);
   the latency limit is --latency-share of that.
2. `slim nas --max-latency-ms LIMIT` searches --steps candidates, each trained --search-epochs
   on the first --search-samples training images minus a --val-samples validation split (lr 0.1,
   cosine, batch 128) and rewarded with its validation top-1. The search resumes from
   --out-dir/search if it was stopped.
3. The best found and the initial network, both freshly initialised, are trained with the same
   final recipe (--final-epochs on all 60,000 training images, lr 0.1 cosine, batch 128, weight
   decay 4e-5) for each seed in --seeds, and evaluated on the 10,000 test images.
4. Both are timed again, interleaved over --rounds (median of --runs each).

Prints a table on stderr and one JSON object on stdout. Timings on a busy machine are noise:
run it with nothing else running.
"""
import argparse
import os
import statistics
import sys
import time

from common import REPO, emit_report, run, run_json  # bench/ (the script directory) is on sys.path

INIT = "4,4,5,1,0,4,4,2,0,4,4,3,0,4,5,2,0,4,7,2,0,4,9,0,0"
INPUT = "1,28,28"


def bench_ms(slim_bin, model, threads, runs):
    j = run_json([slim_bin, "bench", model, "--batch", "1", "--threads", str(threads), "--runs",
                  str(runs), "--warmup", "10", "--json"])
    return j["median_ms"]


def timed(slim_bin, models, threads, rounds, runs):
    """{name: median over rounds of each round's median}, models interleaved and rotated."""
    names = list(models)
    per = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            per[n].append(bench_ms(slim_bin, models[n], threads, runs))
    return {n: statistics.median(v) for n, v in per.items()}, per


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--latency-share", type=float, default=0.8)
    ap.add_argument("--search-epochs", type=int, default=1)
    ap.add_argument("--search-samples", type=int, default=10000)
    ap.add_argument("--val-samples", type=int, default=5000)
    ap.add_argument("--final-epochs", type=int, default=5)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    slim = os.path.abspath(a.slim)
    out = a.out_dir or os.path.join(os.path.dirname(slim), "bench_nas")
    os.makedirs(out, exist_ok=True)
    data = "fashion:" + os.path.join(REPO, "data", "fashion")
    t = str(a.threads)

    init = os.path.join(out, "initial.onnx")
    run([slim, "nas", "export", "--space", "mobilenet_v2", "--tokens", INIT, "--input", INPUT,
         "--classes", "10", "-o", init])
    l0, _ = timed(slim, {"initial": init}, a.threads, a.rounds, a.runs)
    limit = a.latency_share * l0["initial"]
    print("initial latency %.4f ms, limit %.4f ms" % (l0["initial"], limit), file=sys.stderr)

    t0 = time.time()
    search = run_json([slim, "nas", "--space", "mobilenet_v2", "--input", INPUT, "--data", data,
                       "--steps", str(a.steps), "--max-latency-ms", "%.6f" % limit,
                       "--epochs", str(a.search_epochs), "--max-samples", str(a.search_samples),
                       "--val-samples", str(a.val_samples), "--batch", "128", "--lr", "0.1",
                       "--lr-schedule", "cosine", "--threads", t, "--latency-runs", "30",
                       "--json", "-o", os.path.join(out, "search")])
    search_s = time.time() - t0
    best = ",".join(str(v) for v in search["best_tokens"])
    best_file = os.path.join(out, "best.onnx")
    run([slim, "nas", "export", "--space", "mobilenet_v2", "--tokens", best, "--input", INPUT,
         "--classes", "10", "-o", best_file])

    models = {"initial": init, "best": best_file}
    top1 = {n: [] for n in models}
    for seed in [int(s) for s in a.seeds.split(",")]:
        for name, path in models.items():
            trained = os.path.join(out, "%s_seed%d.onnx" % (name, seed))
            r = run_json([slim, "train", path, "--data", data, "--epochs", str(a.final_epochs),
                          "--batch", "128", "--lr", "0.1", "--lr-schedule", "cosine",
                          "--weight-decay", "4e-5", "--seed", str(seed), "--threads", t,
                          "--json", "-o", trained])
            top1[name].append(r["eval"]["top1"])
            print("%s seed %d: test top1 %.4f" % (name, seed, top1[name][-1]), file=sys.stderr)
    ms, rounds = timed(slim, models, a.threads, a.rounds, a.runs)

    rewarded = [c for c in search["candidates"] if not c["rejected"]]
    report = {
        "threads": a.threads,
        "latency_limit_ms": limit,
        "search": {"steps": a.steps, "seconds": search_s,
                   "seconds_per_trained_candidate": search_s / max(1, len(rewarded)),
                   "rejected": search["rejected"], "best_tokens": search["best_tokens"],
                   "best_val_top1": search["best_reward"]},
        "models": {n: {"tokens": INIT if n == "initial" else best, "test_top1": top1[n],
                       "mean_top1": statistics.mean(top1[n]), "latency_ms": ms[n],
                       "round_ms": rounds[n]} for n in models},
    }
    report["latency_ratio"] = ms["best"] / ms["initial"]
    report["top1_delta"] = report["models"]["best"]["mean_top1"] - \
        report["models"]["initial"]["mean_top1"]
    print("| model | tokens | test top-1 (seeds %s) | latency ms |" % a.seeds, file=sys.stderr)
    for n in models:
        m = report["models"][n]
        print("| %s | %s | %s | %.4f |" % (n, m["tokens"], " / ".join("%.4f" % v
                                                                    for v in m["test_top1"]),
                                         m["latency_ms"]), file=sys.stderr)
    print("latency best/initial %.3f, top-1 delta %+.4f" % (report["latency_ratio"],
                                                          report["top1_delta"]), file=sys.stderr)
    emit_report(report, a.json_out)


if __name__ == "__main__":
    main()
