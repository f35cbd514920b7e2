"""The README and the guides in docs/: every script they name answers --help and takes every flag
they give it, every config they name loads, the README's two fresh-machine commands are the
Makefile's targets, CI runs the same test command, and the README links every guide."""
import os
import re
import subprocess
import sys

import pytest

from _helpers import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
GUIDES = ("getting-started", "configs", "datasets", "training", "evaluation", "deployment",
          "reproducing", "benchmarks")
DOCS = {name: open(os.path.join(ROOT, "docs", name + ".md"), encoding="utf-8").read() for name in GUIDES}
ALL_TEXT = README + "".join(DOCS.values())
SCRIPTS = sorted(set(re.findall(r"scripts/(\w+)\.py", ALL_TEXT)))


def test_readme_names_the_scripts():
    assert {"train_mshrnet", "test_mshrnet", "ensemble_eval", "demo", "export", "benchmark",
            "convert_official", "launch_dist"} <= set(SCRIPTS)
    for name in SCRIPTS:
        assert os.path.isfile(os.path.join(ROOT, "scripts", name + ".py")), name


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_help(name):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name + ".py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and "--" in proc.stdout


def test_two_fresh_machine_commands():
    block = re.search(r"## Fresh machine: the two commands\s+```bash\n(.*?)```", README, re.S)
    assert block, "README lacks its fresh-machine section"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert re.search(r"^make test$", ci, re.M)


def test_benchmark_summary_prints_the_readme_table():
    """`benchmark.py --summary` alone prints the models table of docs/getting-started.md (every
    model, three input sizes), counted from the symbols: its numbers cannot drift from the code."""
    from _helpers import load_script, run_main

    guide = DOCS["getting-started"]
    table = [line for line in guide.splitlines()
             if line.startswith("| model | params | 256x192")]
    assert len(table) == 1
    start = guide.splitlines().index(table[0])
    readme_rows = []
    for line in guide.splitlines()[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("| report"):  # the report's own figures are not ours to print
            readme_rows.append(line)
    code, out = run_main(load_script("benchmark").main, ["--summary", "--decode-seconds", "0.01"])
    assert code == 0
    printed = [line for line in out.splitlines() if line.startswith("|")]
    assert printed[:8] == readme_rows
    assert len(readme_rows) == 2 + 6
    # then every decoder's rate at the three crops (timed briefly here)
    decoders = printed[8:]
    assert decoders[0].split("|")[2:5] == ["   256x192 ", "   384x288 ", "   512x384 "]
    assert len(decoders) == 2 + 6 and all(float(c) > 0 for row in decoders[2:]
                                          for c in row.split("|")[2:5])
    # --model restricts it to one row
    code, out = run_main(load_script("benchmark").main, ["--summary", "--model", "hrnet_w8",
                                                        "--decode-seconds", "0.01"])
    rows = [line for line in out.splitlines() if line.startswith("| hrnet_w8")]
    assert code == 0 and len(rows) == 1 and rows[0].count("/") == 3


def test_readme_links_every_guide():
    for name in GUIDES:
        assert "(docs/%s.md)" % name in README, name
    assert len(README.splitlines()) < 80          # the two commands, the overview and links


def _code_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _commands(text):
    """Every command line of the bash blocks (continuation lines joined)."""
    out = []
    for block in _code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        out += [line.split(" #")[0].strip() for line in joined.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return out


@pytest.fixture(scope="module")
def script_help():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    helps = {}
    for name in SCRIPTS:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name + ".py"), "--help"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
        helps[name] = proc.stdout
    return helps


@pytest.mark.parametrize("guide", ("README",) + GUIDES)
def test_guide_commands_use_real_flags_and_configs(guide, script_help):
    """Every ``scripts/X.py`` command in a guide's bash blocks: X exists and takes every
    ``--flag`` given to it; every ``configs/*.yaml`` named anywhere exists and loads."""
    from gluonpose.config import load_config
    text = README if guide == "README" else DOCS[guide]
    checked = 0
    for command in _commands(text):
        hits = list(re.finditer(r"scripts/(\w+)\.py", command))
        for hit, after in zip(hits, hits[1:] + [None]):   # a flag belongs to the script before it
            script = hit.group(1)
            rest = command[hit.end():after.start() if after else len(command)]
            flags = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", re.split(r"[|;&]", rest)[0]))
            missing = [f for f in flags if f not in script_help[script]]
            assert not missing, (guide, script, missing, command)
            checked += 1
    for path in sorted(set(re.findall(r"configs/[\w/]+\.yaml", text))):
        assert os.path.isfile(os.path.join(ROOT, path)), (guide, path)
        if "_base_" not in path and "ensemble" not in path:
            load_config(os.path.join(ROOT, path))
    assert checked or guide in ("README", "configs", "datasets", "getting-started"), guide


def test_every_picture_the_docs_show_exists_and_opens():
    import cv2

    shown = [(os.path.join(ROOT, p) if doc == "README" else os.path.join(ROOT, "docs", p))
             for doc, text in [("README", README)] + list(DOCS.items())
             for p in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", text)]
    assert len(shown) >= 6   # README and docs/evaluation.md: analysis, samples, curves
    for path in shown:
        img = cv2.imread(path)
        assert img is not None and img.shape[0] > 100 and img.std() > 5, path
