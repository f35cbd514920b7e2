"""The side-by-side comparison machinery of ``benchmark.py --side-by-side``: interleaving, RESULT parsing, medians
and ratio. The "official" side here is a stand-in script printing known figures, so the expected ratio is computed
by hand from the figures each side printed."""
import os
import re
import statistics
import sys

import pytest

from gluonpose.tools import benchmark
from gluonpose.benchmarks import sidebyside


def _printer(tmp_path, name, figures):
    """A script printing the next of ``figures`` on each run (a counter file keeps the position)."""
    path = tmp_path / (name + ".py")
    count = tmp_path / (name + ".count")
    path.write_text(
        "import sys\n"
        "n = int(open(%r).read()) if __import__('os').path.exists(%r) else 0\n"
        "open(%r, 'w').write(str(n + 1))\n"
        "print('noise line')\n"
        "print('RESULT %s samples/s: %%s' %% %r[n])\n" % (str(count), str(count), str(count), name, figures))
    return [sys.executable, str(path)]


def test_interleaved_rounds_medians_and_ratio(tmp_path):
    a = _printer(tmp_path, "a", ["10", "30", "20"])
    b = _printer(tmp_path, "b", ["4", "5", "1e1"])
    logged = []
    figures = sidebyside.run_interleaved([("a", a), ("b", b)], 3, quiet_wait=0,
                                         log=logged.append)
    assert figures == {"a": [10.0, 30.0, 20.0], "b": [4.0, 5.0, 10.0]}
    assert [re.match(r"round (\d) (\w)", line).groups() for line in logged] == [
        ("1", "a"), ("1", "b"), ("2", "a"), ("2", "b"), ("3", "a"), ("3", "b")]
    medians, ratio = sidebyside.summarize(figures, "a", "b")
    assert medians == {"a": 20.0, "b": 5.0} and ratio == 4.0


def test_a_side_without_a_figure_is_named(tmp_path):
    silent = [sys.executable, "-c", "print('no figure'); raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)silent \(exit 3\) printed no RESULT line.*no figure"):
        sidebyside.run_interleaved([("silent", silent)], 1, quiet_wait=0)


def test_parse_result_takes_the_last_figure():
    text = "RESULT x samples/s: 1.5\nother\nRESULT y z samples/s: 2.5e1\n"
    assert sidebyside.parse_result(text) == ("y z", 25.0)
    assert sidebyside.parse_result("RESULT broken samples/s: fast") is None


def test_loader_side_by_side_end_to_end(tmp_path, data_dir, capsys):
    """Ours: the real loader benchmark on the COCO samples; official: a stand-in Python that ignores its
    arguments and prints fixed figures. The printed ratio is our median over the stand-in's median."""
    fake = tmp_path / "official_python"
    fake.write_text("#!/bin/sh\necho 'RESULT official loader samples/s: 40'\n")
    os.chmod(str(fake), 0o755)
    code = benchmark.main(["--loader", "--side-by-side", "--official-repo", str(tmp_path), "--official-python",
                           str(fake), "--size", "96", "128", "--batch", "4", "--iters", "1", "--rounds", "2",
                           "--quiet-wait", "0", "--coco-dir", os.path.join(data_dir, "samples", "coco")])
    out = capsys.readouterr().out
    assert code == 0, out
    ours = [float(v) for v in re.findall(r"round \d gluonpose +([0-9.]+) samples/s", out)]
    assert len(ours) == 2 and all(v > 0 for v in ours)
    result = re.search(r"RESULT side-by-side loader 128x96 gluonpose/official ratio ([0-9.]+), "
                       r"gluonpose samples/s: ([0-9.]+)", out)
    assert result, out
    assert float(result.group(2)) == pytest.approx(statistics.median(ours), abs=1e-3)
    assert float(result.group(1)) == pytest.approx(statistics.median(ours) / 40.0, abs=1e-3)
