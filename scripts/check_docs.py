#!/usr/bin/env python3
"""Checks the documentation under docs/ (both languages) and regenerates its CLI reference.

  check_docs.py pages              docs/en and docs/zh hold the same pages
  check_docs.py blocks             each page's runnable blocks are the same in both languages
  check_docs.py run PAGE...        runs the runnable blocks of the pages, one fresh folder each
  check_docs.py links              relative links and #anchors of README.md and docs/ resolve
  check_docs.py flags              every `slim ...` line in a shell block names a command and
                                   flags that `slim <command> --help` lists
  check_docs.py cli [--write]      docs/*/cli.md carry `slim --help` of every command (--write
                                   regenerates them)

A runnable block is a fence opened with ```sh run. Its lines run with bash (-e -o pipefail) in an
empty folder where `slim` is on PATH and data/mnist, data/fashion are the repository's data;
every runnable block of a page runs in that page's folder, in order. Lines starting with # are
comments: they may differ between languages, nothing else may.

The `slim` binary: $SLIM (default: build/slim of the repository); the pages: $SLIM_DOCS (default:
docs/ of the repository). Exit status 1 on a failed check,
with one line per problem.
"""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.environ.get("SLIM_DOCS", os.path.join(ROOT, "docs"))
LANGS = ["en", "zh"]
SLIM = os.environ.get("SLIM", os.path.join(ROOT, "build", "slim"))

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def pages(lang):
    d = os.path.join(DOCS, lang)
    return sorted(f for f in os.listdir(d) if f.endswith(".md"))


def closes(line, mark):
    """Whether `line` closes a fence opened with `mark` (``` or ~~~, at least as long)."""
    t = line.strip()
    return t.startswith(mark) and t.strip(mark[0]) == ""


def prose(text):
    """The lines of `text` with every fenced block, fences included, blanked (numbering kept)."""
    out, mark = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if mark is None and m:
            mark = m.group(2)
        elif mark is not None and closes(line, mark):
            mark = None
        else:
            out.append("" if mark else line)
            continue
        out.append("")
    return out


def fences(text):
    """(info string, body lines, first body line number) of every fenced block."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, mark, info = m.group(1), m.group(2), m.group(3).strip()
        body, start, i = [], i + 2, i + 1
        while i < len(lines) and not closes(lines[i], mark):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line)
            i += 1
        out.append((info, body, start))
        i += 1
    return out


def runnable(path):
    with open(path, encoding="utf-8") as f:
        return [(b, n) for info, b, n in fences(f.read()) if info.split()[:2] == ["sh", "run"]]


def without_comments(body):
    return [l for l in body if not l.lstrip().startswith("#")]


def check_pages():
    en, zh = set(pages("en")), set(pages("zh"))
    problems = [f"docs/zh/{p}: missing (docs/en/{p} exists)" for p in sorted(en - zh)]
    problems += [f"docs/en/{p}: missing (docs/zh/{p} exists)" for p in sorted(zh - en)]
    return problems


def check_blocks():
    problems = []
    for p in sorted(set(pages("en")) & set(pages("zh"))):
        a = runnable(os.path.join(DOCS, "en", p))
        b = runnable(os.path.join(DOCS, "zh", p))
        if len(a) != len(b):
            problems.append(f"docs/*/{p}: {len(a)} runnable blocks in en, {len(b)} in zh")
            continue
        for (ba, na), (bb, nb) in zip(a, b):
            if without_comments(ba) != without_comments(bb):
                problems.append(f"docs/en/{p}:{na} and docs/zh/{p}:{nb}: the runnable blocks "
                                "differ (beyond # comments)")
    return problems


def run_pages(paths, keep=False):
    problems = []
    bindir = tempfile.mkdtemp(prefix="slim-docs-bin-")
    os.symlink(os.path.abspath(SLIM), os.path.join(bindir, "slim"))
    env = dict(os.environ)
    env["PATH"] = bindir + ":/usr/bin:" + env.get("PATH", "")
    env.pop("SLIM", None)
    # OpenMP threads that spin while waiting hold a core another process needs (CTest sets this
    # too, see CMakeLists.txt).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        for path in paths:
            blocks = runnable(path)
            work = tempfile.mkdtemp(prefix="slim-docs-")
            os.mkdir(os.path.join(work, "data"))
            for name in ("mnist", "fashion"):
                os.symlink(os.path.join(ROOT, "data", name), os.path.join(work, "data", name))
            t0 = time.time()
            for body, line in blocks:
                script = "set -eo pipefail\n" + "\n".join(body) + "\n"
                r = subprocess.run(["bash", "-c", script], cwd=work, env=env,
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    tail = (r.stderr.strip() or r.stdout.strip()).split("\n")[-1]
                    problems.append(f"{os.path.relpath(path, ROOT)}:{line}: the block exited "
                                    f"{r.returncode}: {tail}")
                    break
            print(f"{os.path.relpath(path, ROOT)}: {len(blocks)} runnable blocks, "
                  f"{time.time() - t0:.1f} s", file=sys.stderr)
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    return problems


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"<[^>]+>", "", heading).strip().lower()
    s = re.sub(r"[`*_~]", lambda m: "_" if m.group(0) == "_" else "", s)
    s = "".join(c for c in s if c.isalnum() or c in " -_")
    return s.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen, out = {}, set()
    for line in prose(text):
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            s = slug(h.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    out |= set(re.findall(r'<a\s+(?:name|id)="([^"]+)"', text))
    return out


def markdown_files():
    files = [os.path.join(ROOT, f) for f in ("README.md", "DEVELOPMENT.md", "bench/README.md")]
    for lang in LANGS:
        files += [os.path.join(DOCS, lang, p) for p in pages(lang)]
    return [f for f in files if os.path.exists(f)]


def check_links():
    problems = []
    link = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # Links in code do not count.
        for n, line in enumerate((re.sub(r"`[^`]*`", "", l) for l in prose(text)), 1):
            for m in link.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):
                    continue  # http:, https:, mailto:
                file, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                where = f"{os.path.relpath(path, ROOT)}:{n}"
                if not os.path.exists(dest):
                    problems.append(f"{where}: link '{target}': no file {os.path.relpath(dest, ROOT)}")
                elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                    problems.append(f"{where}: link '{target}': no heading with anchor "
                                    f"'#{anchor}' in {os.path.relpath(dest, ROOT)}")
    return problems


def commands():
    """Every command path with its help text: [], [train], [quant, ptq], ... (`slim --help-all`
    prints them all from one process, each after a line "\x1e<path>")."""
    r = subprocess.run([SLIM, "--help-all"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("\x1e"):
        raise SystemExit(f"check_docs: `{SLIM} --help-all` failed: {r.stderr.strip()}")
    out = []
    for part in r.stdout.split("\x1e")[1:]:
        path, _, text = part.partition("\n")
        out.append((path.split()[1:], text.rstrip() + "\n"))
    return out


CLI_HEAD = {
    "en": ("# Command reference\n\n[中文](../zh/cli.md) | English\n\n"
           "Generated from `slim --help` and each command's `--help` by "
           "`python3 scripts/check_docs.py cli --write`; a test fails when it differs from the "
           "binary. The tutorials show the commands at work.\n"),
    "zh": ("# 命令参考\n\n中文 | [English](../en/cli.md)\n\n"
           "本页由 `python3 scripts/check_docs.py cli --write` 从 `slim --help` 和每个命令的 "
           "`--help` 生成；与程序不一致时测试失败。各命令的实际用法见教程。帮助文本保持英文原文。\n"),
}


def cli_page(lang):
    out = [CLI_HEAD[lang]]
    for c, text in commands():
        name = " ".join(["slim"] + c)
        out.append(f"\n## {name}\n\n```text\n{text}```\n")
    return "".join(out)


def check_cli(write):
    problems = []
    for lang in LANGS:
        path = os.path.join(DOCS, lang, "cli.md")
        want = cli_page(lang)
        have = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if write:
            if have != want:
                with open(path + ".tmp", "w", encoding="utf-8") as f:
                    f.write(want)
                os.replace(path + ".tmp", path)
                print(f"check_docs: wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)
        elif have != want:
            problems.append(f"docs/{lang}/cli.md: differs from `slim --help` of this binary; "
                            "run python3 scripts/check_docs.py cli --write")
    return problems


def check_flags():
    helps = {" ".join(c): text for c, text in commands()}
    flags = {}
    for c, text in helps.items():
        fl = set(re.findall(r"(?:^|[ ,])(--?[A-Za-z][\w-]*)", text.split("\nSubcommands:\n")[0]))
        flags[c] = fl
    problems = []
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for info, body, start in fences(text):
            if info.split()[:1] not in (["sh"], ["bash"], ["console"], ["shell"]):
                continue
            # Join continuation lines, then look at every `slim` invocation.
            logical, first = [], []
            for k, line in enumerate(body):
                if logical and logical[-1].endswith("\\"):
                    logical[-1] = logical[-1][:-1] + " " + line.strip()
                else:
                    logical.append(line)
                    first.append(start + k)
            for line, n in zip(logical, first):
                code = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
                # `slim launch ... -- slim train ...` checks both commands.
                code = re.sub(r"\s--\s+(?=slim\s)", " ; ", code)
                for m in re.finditer(r"(?:^|[;&|(]\s*|^\s*(?:\w+=\S+\s+)+)slim\s+([^;&|)]*)",
                                     code):
                    words = m.group(1).split()
                    cmd = []
                    while words and " ".join(cmd + [words[0]]) in helps:
                        cmd.append(words.pop(0))
                    where = f"{os.path.relpath(path, ROOT)}:{n}"
                    if not cmd and words and not words[0].startswith("-"):
                        problems.append(f"{where}: `slim {words[0]}`: no such command")
                        continue
                    known = flags[" ".join(cmd)]
                    sub = helps[" ".join(cmd)].split("\nSubcommands:\n")
                    usage = re.search(r"^Usage: .*$", helps[" ".join(cmd)], re.M).group(0)
                    if (len(sub) == 2 and words and not words[0].startswith("-") and
                            usage.endswith(" SUBCOMMAND")):
                        problems.append(f"{where}: `slim {' '.join(cmd + words[:1])}`: no such "
                                        "command")
                        continue
                    for w in words:
                        if w == "--":
                            break
                        f = w.split("=")[0]
                        if re.match(r"^--?[A-Za-z][\w-]*$", f) and f not in known:
                            problems.append(f"{where}: `slim {' '.join(cmd)}` has no flag {f}")
    return problems


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "pages":
        problems = check_pages()
    elif what == "blocks":
        problems = check_blocks()
    elif what == "run":
        keep = "--keep" in rest
        paths = [p for p in rest if p != "--keep"]
        if not paths:
            paths = [os.path.join(DOCS, lang, p) for lang in LANGS for p in pages(lang)]
        problems = run_pages(paths, keep)
    elif what == "links":
        problems = check_links()
    elif what == "flags":
        problems = check_flags()
    elif what == "cli":
        problems = check_cli("--write" in rest)
    elif what == "list":
        print(json.dumps({lang: pages(lang) for lang in LANGS}))
        problems = []
    else:
        print(f"check_docs: unknown check '{what}'", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
