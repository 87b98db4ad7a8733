#!/usr/bin/python3
"""One MNIST training epoch and one full test-set evaluation of MobileNetV1: Slim vs PyTorch eager.

Usage (from the repository root, after `make build`):
  /usr/bin/python3 bench/bench_train.py [--slim build/slim] [--threads 2] [--batch 128]
                                        [--max-samples N]

Both sides train PaddleSlim's MobileNetV1 (1x28x28, 10 classes: conv1 + 13 depthwise-separable
blocks + global average pool + fc) for one epoch with SGD momentum 0.9, lr 0.1, batch 128, on the
same MNIST files (data/mnist, fetched by scripts/setup.sh), then evaluate the 10,000 test images at
batch 256 — the same thread count on both sides. Slim's times are what `slim train --json`
reports (training loop and evaluation only, no process start-up); PyTorch's are timed around the
same loops in this script. Prints one JSON object with both times, the ratios slim/torch and both
accuracies.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(split, max_samples=0):
    d = os.path.join(REPO, "data", "mnist")
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(d, prefix + "-images-idx3-ubyte")).astype(np.float32)
    y = read_idx(os.path.join(d, prefix + "-labels-idx1-ubyte")).astype(np.int64)
    if max_samples:
        x, y = x[:max_samples], y[:max_samples]
    x = x / 255.0 * 2.0 - 1.0  # PaddleSlim's MNIST scaling, as Slim's reader does
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride, pad, groups=1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class MobileNetV1(nn.Module):
    """PaddleSlim's MobileNetV1 (paddleslim/models/mobilenet.py), scale 1."""
    BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
              (256, 512, 2)] + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]

    def __init__(self, cin=1, classes=10):
        super().__init__()
        layers = [ConvBn(cin, 32, 3, 2, 1)]
        for i, o, s in self.BLOCKS:
            layers += [ConvBn(i, i, 3, s, 1, groups=i), ConvBn(i, o, 1, 1, 0)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(torch.flatten(x, 1))


def torch_run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr, ytr = load_mnist("train", args.max_samples)
    xte, yte = load_mnist("test")
    model = MobileNetV1()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    perm = torch.randperm(len(ytr), generator=g)
    for i in range(0, len(ytr), args.batch):
        idx = perm[i:i + args.batch]
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    model.eval()
    correct = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(yte), 256):
            correct += (model(xte[i:i + 256]).argmax(1) == yte[i:i + 256]).sum().item()
    eval_s = time.perf_counter() - t0
    return train_s, eval_s, correct / len(yte)


def slim_run(args):
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "mv1.onnx")
        subprocess.run([args.slim, "zoo", "mobilenet_v1", "--input", "1,28,28", "--classes", "10",
                        "-o", model], check=True, capture_output=True)
        cmd = [args.slim, "train", model, "--data", "mnist:" + os.path.join(REPO, "data", "mnist"),
               "--epochs", "1", "--batch", str(args.batch), "--lr", "0.1", "--threads",
               str(args.threads), "--eval-batch", "256", "--json", "-o",
               os.path.join(tmp, "trained.onnx")]
        if args.max_samples:
            cmd += ["--max-samples", str(args.max_samples)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("bench_train: slim train failed: " + proc.stderr.strip())
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        return r["epochs"][0]["seconds"], r["eval"]["seconds"], r["eval"]["top1"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim", default=os.path.join(REPO, "build", "slim"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-samples", type=int, default=0, help="train on the first N only")
    args = ap.parse_args()
    args.slim = os.path.abspath(args.slim)
    s_train, s_eval, s_top1 = slim_run(args)
    t_train, t_eval, t_top1 = torch_run(args)
    print(json.dumps({"threads": args.threads, "batch": args.batch,
                      "train_samples": args.max_samples or 60000,
                      "slim_train_s": round(s_train, 2), "torch_train_s": round(t_train, 2),
                      "train_ratio": round(s_train / t_train, 3),
                      "slim_eval_s": round(s_eval, 2), "torch_eval_s": round(t_eval, 2),
                      "eval_ratio": round(s_eval / t_eval, 3),
                      "slim_top1": round(s_top1, 4), "torch_top1": round(t_top1, 4)}))


if __name__ == "__main__":
    main()
