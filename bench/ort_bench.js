#!/usr/bin/env node
// Inference latency of an ONNX model in ONNX Runtime: the peer of `slim bench`.
//
// Usage: node bench/ort_bench.js MODEL.onnx --batch B --threads T [--input C,H,W]
//                                [--runs R] [--warmup W] [--json] [--profile PREFIX]
//
// Runs the model's first input on one fixed random float32 batch (seeded, so every run of the
// script feeds the same numbers) in one session with intraOpNumThreads = T, interOpNumThreads = 1,
// sequential execution and all graph optimisations, and prints the median, mean, min and p90 of
// R timed `session.run` calls after W untimed ones. --input defaults to the model's declared
// input shape without its first (batch) dimension. With --json, prints one JSON object with the
// same keys as `slim bench --json`. With --profile, ONNX Runtime's own profiler records every
// kernel (warm-up and timed runs) into PREFIX_<date>.json (Chrome trace format; its path is
// printed on stderr), to set against `slim bench --profile`.
// Exits non-zero with one line on stderr on failure.
// onnxruntime-node comes from the repository's node_modules (package.json).
'use strict';

const fs = require('fs');
const path = require('path');

function fail(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const a = {model: null, batch: 1, threads: 1, input: null, runs: 20, warmup: 3, json: false,
             profile: null};
  const positive = (name, text, min) => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < min) fail(`${name} '${text}' is not an integer >= ${min}`);
    return v;
  };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--batch') a.batch = positive(arg, value(), 1);
    else if (arg === '--threads') a.threads = positive(arg, value(), 1);
    else if (arg === '--runs') a.runs = positive(arg, value(), 1);
    else if (arg === '--warmup') a.warmup = positive(arg, value(), 0);
    else if (arg === '--input') {
      const text = value();
      a.input = text.split(',').map((s) => positive('--input', s.trim(), 1));
    } else if (arg === '--json') a.json = true;
    else if (arg === '--profile') a.profile = value();
    else if (arg.startsWith('-')) fail(`unknown option '${arg}'`);
    else if (a.model === null) a.model = arg;
    else fail(`unexpected argument '${arg}'`);
  }
  if (a.model === null) {
    fail('usage: node ort_bench.js MODEL.onnx --batch B --threads T [--input C,H,W] ' +
         '[--runs R] [--warmup W] [--json]');
  }
  return a;
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    // Fall back to the repository's node_modules beside bench/.
    try {
      return require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));
    } catch (e2) {
      fail(`cannot load onnxruntime-node (${e.message}); run 'npm install' in the repository`);
    }
  }
}

// Deterministic uniform [-1, 1) numbers (mulberry32), so inputs do not depend on Math.random.
function randomFloat32(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

function percentile(sorted, q) {
  // Nearest rank, as a p90 of a short run should be one of the samples.
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[k];
}

function median(sorted) {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  if (!fs.existsSync(a.model)) fail(`model '${a.model}' does not exist`);
  let session;
  try {
    session = await ort.InferenceSession.create(a.model, {
      intraOpNumThreads: a.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      ...(a.profile ? {enableProfiling: true, profileFilePrefix: a.profile} : {}),
    });
  } catch (e) {
    fail(`cannot load model '${a.model}': ${e.message}`);
  }
  const name = session.inputNames[0];
  let sample = a.input;
  if (sample === null) {
    const meta = (session.inputMetadata || []).find((m) => m.name === name) ||
                 (session.inputMetadata || [])[0];
    const dims = meta && meta.isTensor ? meta.shape.slice(1) : null;
    if (!dims || !dims.every((d) => typeof d === 'number' && d > 0)) {
      fail(`input '${name}' of '${a.model}' has no fixed per-sample shape; give --input C,H,W`);
    }
    sample = dims;
  }
  const dims = [a.batch, ...sample];
  const x = randomFloat32(dims.reduce((p, d) => p * d, 1), 0);
  const feeds = {[name]: new ort.Tensor('float32', x, dims)};

  const samples = [];
  try {
    for (let i = 0; i < a.warmup; ++i) await session.run(feeds);
    for (let i = 0; i < a.runs; ++i) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } catch (e) {
    fail(`running '${a.model}' failed: ${e.message}`);
  }
  const sorted = samples.slice().sort((p, q) => p - q);
  const r = {
    model: a.model,
    batch: a.batch,
    threads: a.threads,
    runs: a.runs,
    warmup: a.warmup,
    median_ms: median(sorted),
    mean_ms: samples.reduce((p, q) => p + q, 0) / samples.length,
    min_ms: sorted[0],
    p90_ms: percentile(sorted, 0.9),
  };
  r.images_per_s = (1000 * a.batch) / r.median_ms;
  if (a.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
  } else {
    process.stdout.write(
        `${a.model}: batch ${a.batch}, ${a.threads} thread(s): ` +
        `median ${r.median_ms.toFixed(3)} ms ` +
        `(mean ${r.mean_ms.toFixed(3)}, min ${r.min_ms.toFixed(3)}, p90 ${r.p90_ms.toFixed(3)}) ` +
        `over ${a.runs} runs, ${r.images_per_s.toFixed(1)} images/s\n`);
  }
  if (a.profile) {
    session.endProfiling();
    process.stderr.write(`ort_bench: profile written to ${a.profile}_<date>.json\n`);
  }
  await session.release();
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
