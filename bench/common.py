"""Helpers the benchmarks share: the repository root and running `slim`/`node` commands."""
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, echo=False):
    """Runs cmd and returns its stdout; a failure raises an error naming cmd and its stderr.
    With echo, cmd is printed first and its stderr (progress) goes straight to ours."""
    if echo:
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if echo else subprocess.PIPE,
                          text=True, cwd=REPO)
    if proc.returncode != 0:
        detail = "see its output above" if echo else (proc.stderr.strip() or proc.stdout)
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode, detail))
    return proc.stdout


def run_json(cmd):
    """Runs cmd and returns the JSON object on the last line of its stdout."""
    lines = run(cmd).strip().splitlines()
    if not lines:
        raise RuntimeError("%s printed nothing on stdout" % " ".join(cmd))
    return json.loads(lines[-1])


def emit_report(report, json_out=None):
    """Prints the report as one JSON line on stdout and, with json_out, writes it there too."""
    text = json.dumps(report)
    print(text)
    if json_out:
        with open(json_out, "w") as f:
            f.write(text + "\n")


def tools(script, slim, out_dir=None):
    """(slim, node, out_dir) for bench script `script`: the absolute `slim` binary, which must be
    built, node from PATH, and out_dir (default <dir of slim>/<script>), created. Exits with a
    one-line message naming what is missing."""
    slim_bin = os.path.abspath(slim)
    if not os.access(slim_bin, os.X_OK):
        sys.exit("%s: %s is not an executable; build it first (make build)" % (script, slim_bin))
    node_bin = shutil.which("node")
    if node_bin is None:
        sys.exit("%s: node is not on PATH; run scripts/setup.sh (ONNX Runtime side)" % script)
    out = os.path.abspath(out_dir or os.path.join(os.path.dirname(slim_bin), script))
    os.makedirs(out, exist_ok=True)
    return slim_bin, node_bin, out
