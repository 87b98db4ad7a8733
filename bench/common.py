"""Helpers the benchmarks share: the repository root and running `slim`/`node` commands."""
import json
import os
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
