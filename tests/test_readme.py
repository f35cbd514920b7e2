"""The README's commands: every script it names answers --help, its two fresh-machine commands are the
Makefile's targets, and CI runs the same test command."""
import os
import re
import subprocess
import sys

import pytest

from _helpers import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
SCRIPTS = sorted(set(re.findall(r"scripts/(\w+)\.py", README)))


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
    """`benchmark.py --summary` alone prints the README's whole table (every model, three input
    sizes), counted from the symbols: the README's numbers cannot drift from the code."""
    from _helpers import load_script, run_main

    table = [line for line in README.splitlines()
             if line.startswith("| model | params | 256x192")]
    assert len(table) == 1
    start = README.splitlines().index(table[0])
    readme_rows = []
    for line in README.splitlines()[start:]:
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
