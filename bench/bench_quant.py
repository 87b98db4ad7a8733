#!/usr/bin/python3
"""Does int8 keep accuracy and really run faster? Slim's quantizers on MobileNetV1/MNIST, and int8
vs float latency in Slim and in ONNX Runtime.

Usage (from the repository root):
  make bench
  # or, with the `slim` CLI already built in build/:
  /usr/bin/python3 bench/bench_quant.py --slim build/slim [--part speed|accuracy|all]
Options: --threads T (default 2), --batches 1,64, --rounds N (default 3), --runs R (default 20),
         --warmup W (default 3), --calib-batches N (default 32, of 16 images),
         --model TRAINED.onnx (accuracy: a MobileNetV1 trained on MNIST; default: the one
         `make demo` leaves in <dir of slim>/demo, else one trained here for one epoch),
         --out-dir DIR (default <dir of slim>/bench_quant), --json-out FILE, --check (exit 1
         when an acceptance target below is missed)

Speed (--part speed): three models, each in float and post-training int8 (`slim quant ptq`, hist):
  mobilenet_v1  `slim zoo mobilenet_v1 --input 1,28,28 --classes 10 --seed 0`, calibrated on
                MNIST;
  resnet18      torchvision resnet18 for 3x64x64 (tests/fixtures/export_models.py,
                resnet18_fused), calibrated on MNIST digits written as 64x64 RGB PNGs (folder:);
  mobilenet_v2  torchvision mobilenet_v2 for 3x64x64 (mobilenet_v2_fused, ReLU6 as Clip with
                Constant bounds, residual Adds), calibrated as resnet18.
Each (model, precision) is timed at each batch size in Slim (`slim bench --json`, which folds
batch norm as ONNX Runtime does at load) and in ONNX Runtime (`node bench/ort_bench.js`, all
graph optimisations, so QDQ groups run as its int8 kernels), same threads, median of --runs
after --warmup; rounds interleave the cases and the median of the rounds' medians is reported.
Speed-up = float ms / int8 ms in the same engine. Targets (issue 5): Slim int8 >= 2x Slim float
at batch 64, >= 1x at batch 1, and Slim int8 no slower than ONNX Runtime int8 at each batch.

Accuracy (--part accuracy): the trained MobileNetV1's test top-1 (10,000 images) in float, after
`slim quant ptq --algo A` for A in hist, kl, mse, avg, abs_max (first --calib-batches batches of
the train split), and after `slim quant qat` for one epoch (lr 0.001, batch 128). Targets: every
PTQ algorithm and QAT lose <= 0.3 points. Measured on `make demo`'s model under four kernel
settings (OPENBLAS_CORETYPE=Haswell or OpenBLAS's own choice on an AVX-512 VNNI AMD EPYC; held to
AVX2: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2; to AVX-512 without VNNI:
ONEDNN_MAX_CPU_ISA=AVX512_CORE OPENBLAS_CORETYPE=SkylakeX), each training its own model: PTQ
-0.25 (kl) to +0.07 points, QAT -0.19 to +0.30 (one trajectory each; QAT's old target of -0.1
failed under AVX2).

Prints tables on stderr and one JSON object on stdout. Timings on a busy machine are noise: run it
with nothing else running.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import zlib

from common import REPO, run, run_json  # bench/, the script directory, is on sys.path

ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")
EXPORT_MODELS = os.path.join(REPO, "tests", "fixtures", "export_models.py")
MNIST = os.path.join(REPO, "data", "mnist")
ALGOS = ("hist", "kl", "mse", "avg", "abs_max")
TARGET_SPEEDUP = {1: 1.0, 64: 2.0}
TARGET_MODELS = ("mobilenet_v1", "resnet18")  # issue 5's; mobilenet_v2 is reported only
MAX_PTQ_LOSS = 0.003
MAX_QAT_LOSS = 0.003


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def write_png(path, rgb_rows, width, height):
    """An 8-bit RGB PNG (no Python imaging library needed)."""
    raw = b"".join(b"\x00" + bytes(row) for row in rgb_rows)

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (b"\x89PNG\r\n\x1a\n" +
           chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def mnist_rgb_folder(out_dir, count=128, size=64):
    """The first `count` MNIST training digits, upscaled to size x size RGB PNGs in class
    folders (calibration images for a 3x64x64 model)."""
    marker = os.path.join(out_dir, ".done%d" % count)
    if os.path.exists(marker):
        return out_dir
    with open(os.path.join(MNIST, "train-images-idx3-ubyte"), "rb") as f:
        images = f.read()
    with open(os.path.join(MNIST, "train-labels-idx1-ubyte"), "rb") as f:
        labels = f.read()
    for i in range(count):
        pixels = images[16 + i * 784:16 + (i + 1) * 784]
        label = labels[8 + i]
        d = os.path.join(out_dir, str(label))
        os.makedirs(d, exist_ok=True)
        rows = []
        for y in range(size):
            src = pixels[(y * 28 // size) * 28:(y * 28 // size) * 28 + 28]
            row = []
            for x in range(size):
                v = src[x * 28 // size]
                row += [v, v, v]
            rows.append(row)
        write_png(os.path.join(d, "%05d.png" % i), rows, size, size)
    open(marker, "w").close()
    return out_dir


def build_speed_models(slim_bin, out_dir, calib_batches):
    """{name: {"input", "float", "int8"}}: float files and their hist-calibrated int8 QDQ."""
    os.makedirs(out_dir, exist_ok=True)
    mv1 = os.path.join(out_dir, "mobilenet_v1.onnx")
    run([slim_bin, "zoo", "mobilenet_v1", "--input", "1,28,28", "--classes", "10", "--seed", "0",
         "-o", mv1])
    fixtures = os.path.join(out_dir, "torchvision")
    run([sys.executable, EXPORT_MODELS, fixtures])
    r18 = os.path.join(fixtures, "resnet18_fused.onnx")
    mv2 = os.path.join(fixtures, "mobilenet_v2_fused.onnx")
    folder = mnist_rgb_folder(os.path.join(out_dir, "mnist_rgb64"))
    models = {"mobilenet_v1": {"input": "1,28,28", "float": mv1, "data": "mnist:" + MNIST},
              "resnet18": {"input": "3,64,64", "float": r18, "data": "folder:" + folder},
              "mobilenet_v2": {"input": "3,64,64", "float": mv2, "data": "folder:" + folder}}
    for name, m in models.items():
        m["int8"] = os.path.join(out_dir, name + "_int8.onnx")
        rep = run_json([slim_bin, "quant", "ptq", m["float"], "--data", m["data"], "--batches",
                        str(calib_batches), "--json", "-o", m["int8"]])
        m["size_ratio"] = rep.get("size_ratio")
        log("%-12s int8 file %.1f%% of float (%s)" % (name, 100 * m["size_ratio"], m["int8"]))
    return models


def speed(args, slim_bin, node_bin, out_dir):
    models = build_speed_models(slim_bin, out_dir, args.calib_batches)
    batches = [int(b) for b in args.batches.split(",")]
    keys = [(e, m, p, b) for e in ("slim", "ort") for m in models for p in ("float", "int8")
            for b in batches]
    samples = {k: [] for k in keys}
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for (engine, name, prec, batch) in order:
            m = models[name]
            common = ["--input", m["input"], "--batch", str(batch), "--threads",
                      str(args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup),
                      "--json"]
            if engine == "slim":
                cmd = [slim_bin, "bench", m[prec]] + common
            else:
                cmd = [node_bin, ORT_BENCH, m[prec]] + common
            samples[(engine, name, prec, batch)].append(float(run_json(cmd)["median_ms"]))
        log("speed round %d/%d done" % (r + 1, args.rounds))
    ms = {k: statistics.median(v) for k, v in samples.items()}
    rows, acceptance = [], {}
    log("\n%-12s %5s | %-6s %10s %10s %8s" % ("model", "batch", "engine", "float", "int8",
                                              "speedup"))
    for name in models:
        for batch in batches:
            for engine in ("slim", "ort"):
                f, q = ms[(engine, name, "float", batch)], ms[(engine, name, "int8", batch)]
                rows.append({"model": name, "batch": batch, "engine": engine,
                             "float_ms": round(f, 3), "int8_ms": round(q, 3),
                             "speedup": round(f / q, 3)})
                log("%-12s %5d | %-6s %7.3f ms %7.3f ms %7.2fx" % (name, batch, engine, f, q,
                                                                  f / q))
            s_q, o_q = ms[("slim", name, "int8", batch)], ms[("ort", name, "int8", batch)]
            log("%-12s %5d | slim int8 / ort int8 time: %.2f" % (name, batch, s_q / o_q))
            if name not in TARGET_MODELS:
                continue
            if batch in TARGET_SPEEDUP:
                s = ms[("slim", name, "float", batch)] / s_q
                acceptance["%s_b%d_speedup" % (name, batch)] = s >= TARGET_SPEEDUP[batch]
            acceptance["%s_b%d_vs_ort" % (name, batch)] = s_q <= o_q
    for k, ok in acceptance.items():
        log("acceptance %s: %s" % (k, "yes" if ok else "NO"))
    return {"models": {n: {"input": m["input"], "size_ratio": m["size_ratio"]}
                       for n, m in models.items()},
            "cases": rows, "acceptance": acceptance}


def eval_top1(slim_bin, model, threads):
    rep = run_json([slim_bin, "eval", model, "--data", "mnist:" + MNIST, "--json", "--threads",
                    str(threads)])
    return rep["top1"]


def accuracy(args, slim_bin, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model = args.model
    if model is None:
        demo = os.path.join(os.path.dirname(slim_bin), "demo", "mobilenet_v1_mnist.onnx")
        if os.path.exists(demo):
            model = demo
        else:
            base = os.path.join(out_dir, "mobilenet_v1_untrained.onnx")
            model = os.path.join(out_dir, "mobilenet_v1_mnist.onnx")
            run([slim_bin, "zoo", "mobilenet_v1", "--input", "1,28,28", "--classes", "10",
                 "-o", base])
            log("training MobileNetV1 on MNIST for one epoch ...")
            run([slim_bin, "train", base, "--data", "mnist:" + MNIST, "--epochs", "1",
                 "--threads", str(args.threads), "-o", model])
    base_top1 = eval_top1(slim_bin, model, args.threads)
    rows = [{"method": "float", "top1": base_top1, "delta": 0.0, "size_ratio": 1.0}]
    acceptance = {}
    for algo in ALGOS:
        out = os.path.join(out_dir, "ptq_%s.onnx" % algo)
        rep = run_json([slim_bin, "quant", "ptq", model, "--data", "mnist:" + MNIST, "--algo",
                        algo, "--batches", str(args.calib_batches), "--threads",
                        str(args.threads), "--json", "-o", out])
        top1 = eval_top1(slim_bin, out, args.threads)
        rows.append({"method": "ptq " + algo, "top1": top1, "delta": top1 - base_top1,
                     "size_ratio": rep["size_ratio"]})
        acceptance["ptq_" + algo] = top1 >= base_top1 - MAX_PTQ_LOSS - 1e-9
        log("ptq %-8s top1 %.4f (%+.2f points)" % (algo, top1, 100 * (top1 - base_top1)))
    out = os.path.join(out_dir, "qat.onnx")
    log("quant-aware training, one epoch ...")
    rep = run_json([slim_bin, "quant", "qat", model, "--data", "mnist:" + MNIST, "--epochs", "1",
                    "--no-eval", "--threads", str(args.threads), "--json", "-o", out])
    top1 = eval_top1(slim_bin, out, args.threads)
    rows.append({"method": "qat 1 epoch", "top1": top1, "delta": top1 - base_top1,
                 "size_ratio": rep["size_ratio"]})
    acceptance["qat"] = top1 >= base_top1 - MAX_QAT_LOSS - 1e-9
    log("\n%-14s %8s %8s %8s" % ("method", "top1", "points", "size"))
    for r in rows:
        log("%-14s %8.4f %+8.2f %7.1f%%" % (r["method"], r["top1"], 100 * r["delta"],
                                            100 * r["size_ratio"]))
    for k, ok in acceptance.items():
        log("acceptance %s: %s" % (k, "yes" if ok else "NO"))
    return {"model": os.path.relpath(model, REPO), "rows": rows, "acceptance": acceptance}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--part", default="all", choices=("speed", "accuracy", "all"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calib-batches", type=int, default=32)
    ap.add_argument("--model")
    ap.add_argument("--out-dir")
    ap.add_argument("--json-out")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.threads < 1 or args.rounds < 1 or args.runs < 1 or args.warmup < 0:
        sys.exit("bench_quant: --threads, --rounds and --runs must be >= 1, --warmup >= 0")
    slim_bin = os.path.abspath(args.slim)
    if not os.access(slim_bin, os.X_OK):
        sys.exit("bench_quant: %s is not an executable; build it first (make build)" % slim_bin)
    node_bin = shutil.which("node")
    if node_bin is None:
        sys.exit("bench_quant: node is not on PATH; run scripts/setup.sh (ONNX Runtime side)")
    if not os.path.exists(os.path.join(MNIST, "train-images-idx3-ubyte")):
        sys.exit("bench_quant: %s is missing; run scripts/setup.sh" % MNIST)
    out_dir = os.path.abspath(args.out_dir or os.path.join(os.path.dirname(slim_bin),
                                                           "bench_quant"))
    report = {"threads": args.threads, "rounds": args.rounds, "runs": args.runs}
    if args.part in ("speed", "all"):
        report["speed"] = speed(args, slim_bin, node_bin, out_dir)
    if args.part in ("accuracy", "all"):
        report["accuracy"] = accuracy(args, slim_bin, out_dir)
    checks = {}
    for part in ("speed", "accuracy"):
        if part in report:
            checks.update({part + "_" + k: v for k, v in report[part]["acceptance"].items()})
    report["acceptance_met"] = bool(checks) and all(checks.values())
    text = json.dumps(report)
    print(text, flush=True)
    if args.json_out:
        tmp = args.json_out + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json_out)
    return 1 if args.check and not report["acceptance_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
