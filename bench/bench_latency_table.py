#!/usr/bin/python3
"""Does a latency table predict what runs? 30 random mobilenet_v2 candidates at 1x28x28,
predicted from the space's table against measured, at batch 1 and 32 with 2 threads.

Usage (from the repository root, with `slim` built in build/):
  /usr/bin/python3 bench/bench_latency_table.py --slim build/slim [--candidates 30]
Options: --threads T (2), --batches 1,32, --candidates N (30), --seed S (0), --runs R (100),
         --rounds N (3), --out-dir DIR, --json-out FILE

Per batch, N rounds, interleaved so that the table and the candidates see the same machine:
1. `slim latency-table --space mobilenet_v2 --input 1,28,28 --batch B --rounds r` measures every
   step configuration of the space (round r times each entry once more; an entry is the
   smallest of its rounds' medians; the table is calibrated again on its six networks).
2. N token vectors drawn uniformly in range (seeded) are exported with `slim nas export`, and
   each is timed with `slim bench` (median of --runs after warm-up, BN folded).
Measured latency of a candidate = the median of its rounds' medians (the "measured median" of
issue 17); the error against the smallest of its rounds' medians (the rule the table's entries
follow) is reported too, as `error_vs_min` and `median_error_vs_min`. Predicted with
`slim latency-table predict` from the final table. Error per candidate: |P - R| / max(P, R) (PaddleSlim's
measure). Goal (issue 17): the median candidate within 10%; the worst and the distribution
are reported.

Prints a table on stderr and one JSON object on stdout. Run it with nothing else running.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

from common import REPO, emit_report, run, run_json  # bench/ (the script directory) is on sys.path

RANGE = [7, 5, 8, 6, 2, 5, 8, 6, 2, 5, 8, 6, 2, 5, 10, 6, 2, 5, 10, 6, 2, 5, 12, 6, 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    slim = os.path.abspath(a.slim)
    out = a.out_dir or os.path.join(os.path.dirname(slim), "bench_latency_table")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(a.seed)
    models = []
    for i in range(a.candidates):
        tokens = [rng.randrange(r) for r in RANGE]
        path = os.path.join(out, "candidate%02d.onnx" % i)
        run([slim, "nas", "export", "--space", "mobilenet_v2", "--tokens",
             ",".join(map(str, tokens)), "--input", "1,28,28", "--classes", "10", "-o", path])
        models.append({"tokens": tokens, "file": path})
    report = {"threads": a.threads, "candidates": a.candidates, "batches": {}}
    for batch in [int(b) for b in a.batches.split(",")]:
        table = os.path.join(out, "table_b%d.json" % batch)
        if os.path.exists(table):
            os.remove(table)  # every round of this run, interleaved with the candidates
        table_s = 0.0
        measured = {m["file"]: [] for m in models}
        for r in range(a.rounds):
            t0 = time.time()
            run([slim, "latency-table", "--space", "mobilenet_v2", "--input", "1,28,28",
                 "--batch", str(batch), "--threads", str(a.threads), "--rounds", str(r + 1),
                 "-o", table])
            table_s += time.time() - t0
            order = models[r:] + models[:r]
            for m in order:
                j = run_json([slim, "bench", m["file"], "--batch", str(batch), "--threads",
                              str(a.threads), "--runs", str(a.runs), "--warmup", "10", "--json"])
                measured[m["file"]].append(j["median_ms"])
        entries = len(json.load(open(table))["entries"])
        predicted = run_json([slim, "latency-table", "predict", table] +
                             [m["file"] for m in models])
        rows = []
        for m in models:
            real = statistics.median(measured[m["file"]])
            fastest = min(measured[m["file"]])
            pred = predicted[m["file"]]
            rows.append({"tokens": m["tokens"], "predicted_ms": pred, "measured_ms": real,
                         "rounds_ms": measured[m["file"]], "min_of_rounds_ms": fastest,
                         "error": abs(pred - real) / max(pred, real),
                         "error_vs_min": abs(pred - fastest) / max(pred, fastest)})
        errors = sorted(r["error"] for r in rows)
        summary = {"table_entries": entries, "table_seconds": table_s,
                   "median_error": statistics.median(errors), "worst_error": errors[-1],
                   "within_5pct": sum(e <= 0.05 for e in errors),
                   "within_10pct": sum(e <= 0.10 for e in errors),
                   "within_20pct": sum(e <= 0.20 for e in errors),
                   "quartiles": [errors[len(errors) // 4], errors[len(errors) // 2],
                                 errors[3 * len(errors) // 4]],
                   "median_error_vs_min": statistics.median(r["error_vs_min"] for r in rows),
                   "round_spread": statistics.median(
                       (max(r["rounds_ms"]) - min(r["rounds_ms"])) / min(r["rounds_ms"])
                       for r in rows),
                   "rows": rows}
        report["batches"][str(batch)] = summary
        print("batch %d: %d entries in %.0f s; error median %.3f, worst %.3f, within 10%%: %d/%d"
              % (batch, entries, table_s, summary["median_error"], summary["worst_error"],
                 summary["within_10pct"], len(rows)), file=sys.stderr)
    emit_report(report, a.json_out)


if __name__ == "__main__":
    main()
