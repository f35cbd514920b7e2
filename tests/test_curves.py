"""``gluonpose-curves`` (scripts/plot_curves.py): several runs' loss, learning rate and validation AP on
one figure, each run's best epoch (argmax of its AP, earliest on a tie) marked and reported; user
mistakes in the run dirs or their CSVs are one ``error: ...`` line naming the file, exit 2.

The runs are small hand-written ``metrics.csv`` / ``iterations.csv`` files with the training hooks'
own columns (no training: a real 2-epoch run costs ~8 s on 2 cores).
"""
import os

import cv2
import pytest

from gluonpose.engine.hooks import EPOCH_COLUMNS, ITER_COLUMNS
from gluonpose.utils.curves import (MetricsFileError, best_epoch, compare_runs_figure, load_run,
                                    plot_runs, run_labels)

from _helpers import load_script, run_main


#: each command sets logging up on the stderr of its own test (conftest.fresh_logging)
pytestmark = pytest.mark.usefixtures("fresh_logging")


@pytest.fixture(scope="module")
def main():
    return load_script("plot_curves").main


def _write(path, columns, rows):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as f:
        f.write(",".join(columns) + "\n")
        for r in rows:
            f.write(",".join("" if r.get(c) is None else str(r[c]) for c in columns) + "\n")


def make_run(folder, aps, steps_per_epoch=4, lr=1e-3, iterations=True):
    """A work dir of ``len(aps)`` epochs: metrics.csv (AP None = not validated that epoch) and,
    with ``iterations``, iterations.csv with ``steps_per_epoch`` rows per epoch."""
    epochs = [{"epoch": e + 1, "lr": lr, "loss": 0.02 / (e + 1), "heatmap": 0.012 / (e + 1),
               "offset": 0.008 / (e + 1), "samples_per_s": 50.0, "seconds": 3.0, "skipped": 0,
               "AP": ap} for e, ap in enumerate(aps)]
    _write(folder / "metrics.csv", EPOCH_COLUMNS, epochs)
    if iterations:
        steps = [{"progress": e + (i + 1) / steps_per_epoch, "epoch": e + 1, "iter": i, "lr": lr,
                  "loss": 0.02 / (e + (i + 1) / steps_per_epoch), "heatmap": 0.01, "offset": 0.005,
                  "samples_per_s": 50.0}
                 for e in range(len(aps)) for i in range(steps_per_epoch)]
        _write(folder / "iterations.csv", ITER_COLUMNS, steps)
    return str(folder)


def test_three_runs_on_one_figure_with_best_epochs(tmp_path, main):
    a = make_run(tmp_path / "w32", [0.31, 0.52, 0.61, 0.58, 0.60])
    b = make_run(tmp_path / "w48", [None, 0.40, None, 0.66, None, 0.66, None, 0.65], lr=5e-4)  # tie: 4
    c = make_run(tmp_path / "smoke", [None, None], iterations=False)               # never validated
    out = str(tmp_path / "figs" / "cmp.png")
    code, stdout = run_main(main, [a, b, c, "--out", out])
    assert code == 0
    img = cv2.imread(out)
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 10
    assert "wrote %s (3 runs)" % out in stdout
    assert "w32: best AP 0.6100 at epoch 3 (5 epochs)" in stdout
    assert "w48: best AP 0.6600 at epoch 4 (8 epochs)" in stdout
    assert "smoke: no validation AP (2 epochs)" in stdout
    assert not [n for n in os.listdir(os.path.dirname(out)) if n != "cmp.png"], "temp files left"

    path, summary = plot_runs([a, b, c], str(tmp_path / "api.png"))
    assert path == str(tmp_path / "api.png") and os.path.isfile(path)
    assert {k: (v["best_epoch"], v["best_value"], v["epochs"]) for k, v in summary.items()} == \
        {"w32": (3, 0.61, 5), "w48": (4, 0.66, 8), "smoke": (None, None, 2)}


def test_figure_panels_markers_and_legend(tmp_path):
    runs = [load_run(make_run(tmp_path / "a", [0.2, 0.5, 0.4])),
            load_run(make_run(tmp_path / "b", [None, None, None, None], iterations=False))]
    fig, summary = compare_runs_figure(runs)
    axes = {ax.get_ylabel(): ax for ax in fig.axes}
    assert set(axes) == {"loss", "learning rate", "validation AP"}
    loss, lr, val = axes["loss"], axes["learning rate"], axes["validation AP"]
    assert loss.get_shared_x_axes().joined(loss, val) and loss.get_shared_x_axes().joined(loss, lr)
    assert loss.get_yscale() == "log"
    legend = [t.get_text() for t in loss.get_legend().get_texts()]
    assert legend == ["a (best AP 0.500 @ epoch 2)", "b (no validation)"]
    # run a: its loss from iterations.csv (fractional epochs), run b's from metrics.csv (epochs)
    curve_a, curve_b = [ln for ln in loss.get_lines() if not ln.get_label().startswith("_")]
    assert list(curve_a.get_xdata())[:2] == [0.25, 0.5] and list(curve_b.get_xdata()) == [1, 2, 3, 4]
    assert curve_a.get_color() != curve_b.get_color()
    # the best marker: the one star, at run a's best epoch, in run a's colour, annotated
    stars = [ln for ln in val.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [2] and list(stars[0].get_ydata()) == [0.5]
    assert stars[0].get_color() == curve_a.get_color()
    assert [t.get_text() for t in val.texts] == ["best 0.500 @ 2"]
    assert summary["a"]["best_epoch"] == 2 and summary["b"]["best_epoch"] is None

    # no run validated: loss and learning rate only
    fig, _ = compare_runs_figure(runs[1:])
    assert sorted(ax.get_ylabel() for ax in fig.axes) == ["learning rate", "loss"]


def test_best_epoch_is_the_argmax_first_on_a_tie():
    rows = [{"epoch": 1, "AP": 0.5}, {"epoch": 2, "AP": 0.7}, {"epoch": 3, "AP": None},
            {"epoch": 4, "AP": 0.7}, {"epoch": 5, "AP": 0.69}]
    assert best_epoch(rows) == (2, 0.7)
    assert best_epoch([{"epoch": 1, "AP": float("nan")}, {"epoch": 2, "AP": 0.1}]) == (2, 0.1)
    assert best_epoch([{"epoch": 1, "AP": None}]) == (None, None)
    assert best_epoch([]) == (None, None) and best_epoch(None) == (None, None)
    assert best_epoch([{"epoch": 1, "AP": 0.3, "AR": 0.9}, {"epoch": 2, "AR": 0.8}], "AR") == (1, 0.9)


def test_labels_tell_runs_with_the_same_name_apart(tmp_path, main):
    assert run_labels(["x/a/exp1", "y/a/exp1", "b/exp2"]) == ["x/a/exp1", "y/a/exp1", "exp2"]
    assert run_labels(["x/exp", "y/exp/"]) == ["x/exp", "y/exp"]
    assert run_labels(["/r/exp", "/r/exp"]) == ["exp", "exp #2"]
    one = make_run(tmp_path / "lr1" / "exp", [0.4, 0.5])
    two = make_run(tmp_path / "lr2" / "exp", [0.45, 0.42])
    code, stdout = run_main(main, [one, two, "--out", str(tmp_path / "c.png")])
    assert code == 0
    assert "lr1/exp: best AP 0.5000 at epoch 2" in stdout and "lr2/exp: best AP 0.4500 at epoch 1" in stdout
    code, stdout = run_main(main, [one, two, "--out", str(tmp_path / "c.png"), "--labels", "small, big"])
    assert code == 0 and "  small: best" in stdout and "  big: best" in stdout


def test_default_out_is_in_the_current_folder(tmp_path, monkeypatch, main):
    run = make_run(tmp_path / "r", [0.1])
    monkeypatch.chdir(tmp_path)
    code, stdout = run_main(main, [run])
    assert code == 0 and stdout.startswith("wrote curves_compare.png")
    assert cv2.imread(str(tmp_path / "curves_compare.png")) is not None


def _error(capsys, main, argv):
    """``main(argv)``: exit 2 and exactly one line on stderr, ``error: ...``, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_user_errors_are_one_line_naming_the_file(tmp_path, capsys, main):
    good = make_run(tmp_path / "good", [0.5])
    out = ["--out", str(tmp_path / "o.png")]
    missing = str(tmp_path / "missing")
    line = _error(capsys, main, [good, missing] + out)
    assert missing in line and "does not exist" in line
    empty_dir = tmp_path / "no_csv"
    empty_dir.mkdir()
    line = _error(capsys, main, [str(empty_dir)] + out)
    assert str(empty_dir) in line and "metrics.csv" in line and "iterations.csv" in line
    line = _error(capsys, main, [str(tmp_path / "good" / "metrics.csv")] + out)
    assert "not a folder" in line

    def bad(name, text, csv="metrics.csv"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / csv).write_text(text)
        return str(folder / csv), _error(capsys, main, [good, str(folder)] + out)

    path, line = bad("zero_bytes", "")
    assert path in line and "empty" in line
    path, line = bad("header_only", ",".join(EPOCH_COLUMNS) + "\n")
    assert path in line and "no rows" in line
    path, line = bad("no_epoch", "lr,loss,AP\n0.001,0.5,0.3\n")
    assert path in line and "no epoch column" in line
    path, line = bad("no_progress", "epoch,loss\n1,0.5\n", csv="iterations.csv")
    assert path in line and "no progress column" in line
    path, line = bad("text_cell", "epoch,loss,AP\n1,0.5,0.3\n2,0.4,high\n")
    assert path in line and "line 3" in line and "column AP" in line and "'high'" in line
    path, line = bad("short_row", "epoch,loss,AP\n1,0.5,0.3\n2,0.4\n")
    assert path in line and "line 3" in line
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "metrics.csv").write_bytes(b"epoch,AP\n1,\xff\xfe\n")
    line = _error(capsys, main, [str(tmp_path / "binary")] + out)
    assert str(tmp_path / "binary" / "metrics.csv") in line and "not a readable CSV" in line

    # flags
    line = _error(capsys, main, [good, good, "--labels", "a"] + out)
    assert "--labels" in line
    line = _error(capsys, main, [good, good, "--labels", "a,a"] + out)
    assert "--labels" in line
    line = _error(capsys, main, [good, "--metric", "AP50"] + out)
    assert "--metric AP50" in line
    line = _error(capsys, main, [good, "--out", str(tmp_path / "o.jpg")])
    assert "o.jpg" in line
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _error(capsys, main, [good, "--out", str(blocker / "o.png")])
    assert str(blocker / "o.png") in line
    assert not os.path.exists(str(tmp_path / "o.png"))


def test_api_errors_are_user_errors(tmp_path):
    with pytest.raises(MetricsFileError, match="line 2, column epoch"):
        folder = tmp_path / "r"
        folder.mkdir()
        (folder / "metrics.csv").write_text("epoch,AP\none,0.5\n")
        load_run(str(folder))
    assert not (tmp_path / "missing").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists(), "reading must not create files"
