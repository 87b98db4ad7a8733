#!/usr/bin/python3
"""Peak memory (resident set) of Slim's commands against ONNX Runtime's (issue 20).

Usage (from the repository root, with `slim` built in build/):
  /usr/bin/python3 bench/bench_memory.py [--threads 2] [--out-dir DIR] [--json-out FILE]
      [--check]

Each command runs in its own process; its peak resident set is the kernel's ru_maxrss of that
process (os.wait4), in MB. Processes:
  slim --version                 what loading the binary costs (LibTorch and its libraries)
  slim run MODEL                 one batch-1 inference on a .npy input, output written
  slim bench MODEL               20 timed batch-1 runs after 3 warm-ups
  node ort_bench.js MODEL        ONNX Runtime in node, the same 20 runs (node -e '' alone: the
                                 empty process)
Models: the README's (the zoo's MobileNetV1 1x28x28, torchvision resnet18 and mobilenet_v2
3x64x64 with BN folded, each float and int8 from `slim quant ptq`), and torchvision resnet50 at
3x224x224 in int8 (the issue's case, a 25 MB file). Goal (issue 20): `slim run` on the int8
resnet50 within 1.5x of ONNX Runtime's peak.

Prints a table on stderr and one JSON object on stdout.
"""
import argparse
import os
import subprocess
import sys
import warnings

from common import REPO, emit_report, run, tools  # bench/ is on sys.path
from bench_quant import build_speed_models, mnist_rgb_folder

ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")
GOAL = 1.5


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# Forks and execs the command from a small Python process and prints the child's ru_maxrss (KB).
# Not from this process: Linux carries the pre-exec address space's high-water mark into the
# child's maxrss, and this one holds PyTorch after the exports (900 MB).
LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_mb(cmd):
    """Runs cmd (its stdout discarded) and returns its peak resident set in MB."""
    proc = subprocess.run(["/usr/bin/python3", "-c", LAUNCHER] + cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode,
                                                        proc.stderr.strip()))
    return int(proc.stdout.strip()) / 1024.0


def resnet50_int8(slim_bin, out_dir):
    """torchvision resnet50 (seeded weights) for 3x224x224, BN folded, quantized by Slim."""
    path = os.path.join(out_dir, "resnet50_224.onnx")
    int8 = os.path.join(out_dir, "resnet50_224_int8.onnx")
    if not os.path.exists(path):
        import torch
        import torchvision
        torch.manual_seed(1234)
        model = torchvision.models.resnet50().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), path + ".tmp",
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
        os.replace(path + ".tmp", path)
    if not os.path.exists(int8):
        folder = mnist_rgb_folder(os.path.join(out_dir, "mnist_rgb64"))
        run([slim_bin, "quant", "ptq", path, "--data", "folder:" + folder, "--batches", "4",
             "--batch-size", "8", "-o", int8])
    return int8


def npy_input(path, shape):
    """A float32 .npy of zeros of `shape` (the header written by hand: no numpy needed)."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        "%d, " % d for d in shape)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    count = 1
    for d in shape:
        count *= d
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        f.write(b"\x00" * (4 * count))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir")
    ap.add_argument("--json-out")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    slim_bin, node_bin, out_dir = tools("bench_memory", args.slim, args.out_dir)
    models = build_speed_models(slim_bin, os.path.join(out_dir, "readme"), 8)
    cases = []
    for name, m in models.items():
        for prec in ("float", "int8"):
            cases.append((name, prec, m[prec], m["input"]))
    cases.append(("resnet50 224", "int8", resnet50_int8(slim_bin, out_dir), "3,224,224"))

    threads = str(args.threads)
    base = {"slim --version": peak_mb([slim_bin, "--version"]),
            "node (empty)": peak_mb([node_bin, "-e", ""])}
    log("empty processes: slim --version %.0f MB, node %.0f MB" % (base["slim --version"],
                                                                    base["node (empty)"]))
    rows = []
    log("\n%-14s %-5s %8s | %10s %10s %10s | %8s" % ("model", "prec", "file MB", "slim run",
                                                   "slim bench", "ORT", "run/ORT"))
    for name, prec, path, shape in cases:
        dims = [1] + [int(d) for d in shape.split(",")]
        x = npy_input(os.path.join(out_dir, "x_%s.npy" % shape.replace(",", "x")), dims)
        y = os.path.join(out_dir, "y.npy")
        common = ["--batch", "1", "--threads", threads, "--runs", "20", "--warmup", "3",
                  "--input", shape]
        r = {"model": name, "precision": prec, "file_mb": os.path.getsize(path) / 2**20,
             "slim_run_mb": peak_mb([slim_bin, "run", path, "--in", x, "--out", y]),
             "slim_bench_mb": peak_mb([slim_bin, "bench", path] + common),
             "ort_mb": peak_mb([node_bin, ORT_BENCH, path] + common)}
        r["run_over_ort"] = r["slim_run_mb"] / r["ort_mb"]
        rows.append({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
        log("%-14s %-5s %8.1f | %7.0f MB %7.0f MB %7.0f MB | %8.2f" % (
            name, prec, r["file_mb"], r["slim_run_mb"], r["slim_bench_mb"], r["ort_mb"],
            r["run_over_ort"]))
    goal = rows[-1]["run_over_ort"] <= GOAL
    log("\nacceptance int8 resnet50 peak within %.1fx of ONNX Runtime's: %s (%.2fx)" % (
        GOAL, "yes" if goal else "NO", rows[-1]["run_over_ort"]))
    report = {"threads": args.threads, "empty_processes_mb": base, "rows": rows,
              "acceptance": {"resnet50_int8_peak": goal}, "acceptance_met": goal}
    emit_report(report, args.json_out)
    return 1 if args.check and not goal else 0


if __name__ == "__main__":
    sys.exit(main())
