"""Helpers the benchmarks share: the repository root and running `slim`/`node` commands."""
import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    """Runs cmd and returns its stdout; a failure raises an error naming cmd and its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode,
                                                       proc.stderr.strip() or proc.stdout))
    return proc.stdout


def run_json(cmd):
    """Runs cmd and returns the JSON object on the last line of its stdout."""
    lines = run(cmd).strip().splitlines()
    if not lines:
        raise RuntimeError("%s printed nothing on stdout" % " ".join(cmd))
    return json.loads(lines[-1])
