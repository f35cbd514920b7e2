"""Training records: a CSV of metrics and a matplotlib plot of the loss, learning-rate and
validation-AP curves, of one run (:func:`plot_curves`) or several side by side
(:func:`plot_runs`)."""
import collections
import csv
import math
import os

from ..errors import MissingFileError, UserError
from .io import atomic_write, output_guard

#: the per-epoch and the per-logged-step records of a work dir (written by the training hooks)
EPOCH_CSV, STEP_CSV = "metrics.csv", "iterations.csv"


class MetricsFileError(UserError, ValueError):
    """A metrics CSV the user pointed at is empty or malformed; the message names the file (and
    the line / column)."""


class MetricsCSV:
    """Append rows of a fixed set of columns to ``path`` (header written once).

    An existing file with other columns (an older version) is rewritten with these columns,
    keeping the values of the columns both have. Empty ``columns`` open an existing file as it is
    (e.g. only to :meth:`read` it).
    """

    def __init__(self, path, columns):
        self.path = path
        self.columns = list(columns)
        if not os.path.isfile(path):
            self._rewrite([])
            return
        with open(path, newline="") as f:
            header = next(csv.reader(f), None) or []
        if not self.columns:
            self.columns = header
        elif header != self.columns:
            self._rewrite(self._raw_rows())

    def _raw_rows(self):
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows):
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow(self.columns)
                for r in rows:
                    out.writerow([r.get(c, "") if r.get(c) is not None else "" for c in self.columns])
        atomic_write(self.path, write)

    def append(self, row):
        with output_guard(self.path), open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])

    def replace_last(self, row):
        """Rewrite the last row (e.g. to add the validation AP to the epoch's row)."""
        rows = self._raw_rows()
        self._rewrite(rows[:-1] + [{c: row.get(c, "") for c in self.columns}])

    def drop_after_epoch(self, epoch, key="epoch", step=0):
        """Remove the rows whose ``key`` column is greater than ``epoch`` (rows a killed run wrote
        after the checkpoint it is resumed from) and a last line torn by a kill; returns how many
        rows were removed. ``step`` > 0 (a mid-epoch checkpoint after ``step`` steps of epoch
        ``epoch + 1``): that epoch's rows of its first ``step`` steps (``iter`` < step) stay."""
        rows = self._raw_rows()
        torn = False
        with open(self.path, "rb") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        keep = [r for r in (rows[:-1] if torn else rows)
                if not _after(r.get(key), epoch) or (step and not _after(r.get(key), epoch + 1)
                                                     and not _after(r.get("iter"), step - 1))]
        if len(keep) != len(rows):
            self._rewrite(keep)
        return len(rows) - len(keep)

    def read(self):
        """All rows as a list of dicts of floats (empty cells -> None)."""
        return [{k: _number(v) for k, v in r.items()} for r in self._raw_rows()]


def _number(cell):
    """A CSV cell as a float; an empty cell -> None (ValueError for other text)."""
    return float(cell) if cell not in ("", None) else None


def read_metrics(path, required=()):
    """The rows of a metrics CSV the user named (e.g. another run's ``metrics.csv``), as
    :meth:`MetricsCSV.read` gives them, but checked: :class:`MetricsFileError` naming ``path``
    when it has no header line, lacks a ``required`` column, or has a row of another length or a
    cell that is not a number (naming the line and column). Blank lines are skipped."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, None) or []]
            if not any(header):
                raise MetricsFileError("%s is empty (no header line of column names)" % path)
            missing = [c for c in required if c not in header]
            if missing:
                raise MetricsFileError("%s has no %s column (its columns: %s)"
                                       % (path, " / ".join(missing), ", ".join(header)))
            rows = []
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise MetricsFileError("%s line %d: %d cells, the header has %d columns"
                                           % (path, reader.line_num, len(cells), len(header)))
                row = {}
                for name, cell in zip(header, cells):
                    try:
                        row[name] = _number(cell.strip())
                    except ValueError:
                        raise MetricsFileError("%s line %d, column %s: %r is not a number"
                                               % (path, reader.line_num, name, cell)) from None
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as err:
        raise MetricsFileError("%s is not a readable CSV file (%s)" % (path, err)) from None
    except OSError as err:
        raise MetricsFileError("cannot read %s (%s)" % (path, err.strerror or err)) from None
    return rows


def _after(value, epoch):
    try:
        return float(value) > epoch
    except (TypeError, ValueError):
        return True  # a torn last line of a killed run


def curves_figure(rows, x_key="progress", keys=("loss", "heatmap", "offset"), lr_key="lr",
                  val_rows=None, val_key="AP"):
    """The matplotlib figure of :func:`plot_curves` (caller closes it); None without rows.

    Top panel: loss terms (log scale, left axis) and the learning rate (dashed, right axis)
    against (fractional) epochs. When ``val_rows`` (per-epoch rows with ``epoch`` and
    ``val_key``, e.g. ``metrics.csv``) hold any value, a second panel below plots it against the
    epoch, on the same x axis, with each point labelled.
    """
    plt = agg_pyplot()
    if not rows:
        return None
    val = _points(val_rows, "epoch", val_key)
    if val:
        fig, (ax, ax_val) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [r[x_key] for r in rows]
    for k in keys:
        ys = [r.get(k) for r in rows]
        if any(y is not None and y > 0 for y in ys):
            ax.plot(xs, ys, label=k)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(xs, [r.get(lr_key) for r in rows], "k--", label=lr_key, alpha=0.6)
    ax2.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right")
    if val:
        ex, ey = zip(*val)
        ax_val.plot(ex, ey, "o-", color="tab:green", label="validation " + val_key)
        for x, y in val:
            ax_val.annotate("%.3f" % y, (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8)
        ax_val.set_ylabel("validation " + val_key)
        ax_val.set_ylim(0, max(1.0, max(ey) * 1.1))
        ax_val.grid(True, alpha=0.3)
        ax_val.legend(loc="lower right")
        ax_val.set_xlabel("epoch")
    else:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig


def plot_curves(rows, path, x_key="progress", keys=("loss", "heatmap", "offset"), lr_key="lr",
                val_rows=None, val_key="AP"):
    """Write :func:`curves_figure` as a PNG to ``path`` (atomically); returns the path, or None
    when there are no rows."""
    fig = curves_figure(rows, x_key, keys, lr_key, val_rows, val_key)
    if fig is None:
        return None
    return save_png(fig, path)


def agg_pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _points(rows, x_key, y_key):
    """(x, y) of the ``rows`` that have both values."""
    return [(r[x_key], r[y_key]) for r in (rows or ())
            if r.get(x_key) is not None and r.get(y_key) is not None]


def save_png(fig, path, dpi=90, what=None):
    """Write ``fig`` as a PNG to ``path`` atomically (``what``: what it holds, for a full-disk
    message), close it; returns the path."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), what=what)
    finally:
        agg_pyplot().close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# several runs on one figure


#: one run's records: its folder, legend label, per-epoch rows (``metrics.csv``, or None) and
#: per-step rows (``iterations.csv``, or None)
RunRecords = collections.namedtuple("RunRecords", "path label epochs steps")


def load_run(run_dir, label=None):
    """A work dir's :class:`RunRecords` (label default: the folder's name). Raises
    :class:`MissingFileError` for a folder that does not exist or has neither ``metrics.csv`` nor
    ``iterations.csv``, :class:`MetricsFileError` for a malformed one (``metrics.csv`` needs an
    ``epoch`` column, ``iterations.csv`` a ``progress`` column) or when neither has a row."""
    if not os.path.isdir(run_dir):
        raise MissingFileError("run dir %s %s" % (run_dir, "is not a folder (pass the training "
                                                  "work dir that holds %s)" % EPOCH_CSV
                                                  if os.path.exists(run_dir) else "does not exist"))
    found = {}
    for name, x_key in ((EPOCH_CSV, "epoch"), (STEP_CSV, "progress")):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            found[name] = read_metrics(path, required=(x_key,))
    if not found:
        raise MissingFileError("run dir %s has neither %s nor %s (written by training, "
                               "scripts/train_mshrnet.py)" % (run_dir, EPOCH_CSV, STEP_CSV))
    if not any(found.values()):
        raise MetricsFileError("%s: no rows to plot" % " and ".join(
            os.path.join(run_dir, name) for name in found))
    return RunRecords(run_dir, label or run_labels([run_dir])[0], found.get(EPOCH_CSV),
                      found.get(STEP_CSV))


def run_labels(run_dirs):
    """Legend labels of ``run_dirs``: each folder's name, or as many trailing path components as
    tell runs with the same name apart (``a/exp1``, ``b/exp1``); the same folder twice gets
    ``#2``, ``#3`` ... after the second and later labels."""
    parts = [os.path.abspath(d).rstrip(os.sep).split(os.sep) for d in run_dirs]
    depth = [1] * len(parts)
    while True:
        labels = ["/".join(p[-n:]) for p, n in zip(parts, depth)]
        grow = [i for i, lab in enumerate(labels) if depth[i] < len(parts[i]) and any(
            other == lab and parts[j] != parts[i] for j, other in enumerate(labels))]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen = collections.Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(lab if seen[lab] == 1 else "%s #%d" % (lab, seen[lab]))
    return out


def best_epoch(epoch_rows, metric="AP"):
    """(epoch, value) of the highest finite ``metric`` of ``epoch_rows``; a tie -> the earliest
    epoch; (None, None) without any value."""
    points = [(e, v) for e, v in _points(epoch_rows, "epoch", metric) if math.isfinite(v)]
    if not points:
        return None, None
    epoch, value = max(points, key=lambda p: (p[1], -p[0]))
    return (int(epoch) if float(epoch).is_integer() else epoch), value


def _run_curve(run, key):
    """(x, y) of ``key`` of a run against the (fractional) epoch: from its per-step rows
    (``progress``) when they have the key, else from its per-epoch rows (``epoch``)."""
    for rows, x_key in ((run.steps, "progress"), (run.epochs, "epoch")):
        points = _points(rows, x_key, key)
        if points:
            return points
    return []


def _run_epochs(run):
    """How many epochs a run's records cover (the last epoch, or the last fractional one rounded
    up)."""
    xs = [x for rows, k in ((run.epochs, "epoch"), (run.steps, "progress"))
          for x, _ in _points(rows, k, k)]
    return int(math.ceil(max(xs) - 1e-9)) if xs else 0


def _mark_best(ax_val, panels, run, metric, best, color, index, x_max):
    """A run's validation curve, a star at its best epoch with the value annotated, and a dotted
    line at that epoch through every panel."""
    epoch, value = best
    ax_val.plot(*zip(*_points(run.epochs, "epoch", metric)), "o-", color=color, ms=3.5)
    ax_val.plot([epoch], [value], "*", color=color, ms=15, mec="black", mew=0.7, zorder=5)
    ax_val.annotate("best %.3f @ %g" % (value, epoch), (epoch, value), textcoords="offset points",
                    xytext=(0, 9 + 11 * (index % 3)), fontsize=8, color=color,
                    ha="right" if epoch > 0.85 * x_max else "center")
    for a in panels:
        a.axvline(epoch, color=color, ls=":", lw=1, alpha=0.7)


def compare_runs_figure(runs, metric="AP", loss_key="loss", lr_key="lr"):
    """One figure of several runs (a list of :class:`RunRecords`), one colour per run, panels on
    a shared epoch axis: ``loss_key`` (log scale), the learning rate and, when any run has one,
    the validation ``metric`` with each run's best epoch marked and annotated. Returns
    ``(figure, summary)``, summary ``{label: {"best_epoch", "best_value", "metric",
    "epochs"}}`` (best ones None for a run without validation, which the legend says)."""
    plt = agg_pyplot()
    best = {run.label: best_epoch(run.epochs, metric) for run in runs}
    with_val = any(e is not None for e, _ in best.values())
    titles = ["loss", "learning rate"] + (["validation " + metric] if with_val else [])
    fig, panels = plt.subplots(len(titles), 1, sharex=True, squeeze=False,
                               figsize=(9, 2.7 * len(titles) + 1.2),
                               gridspec_kw={"height_ratios": [3, 2, 3][:len(titles)]})
    panels = list(panels[:, 0])
    ax_loss, ax_lr, ax_val = (panels + [None])[:3]
    cmap = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    curves = {run.label: ([(x, y) for x, y in _run_curve(run, loss_key) if math.isfinite(y) and y > 0],
                          _run_curve(run, lr_key)) for run in runs}
    x_max = max([x for loss, lr in curves.values() for x, _ in loss + lr] +
                [e for e, _ in best.values() if e is not None] + [1])
    summary = {}
    for i, run in enumerate(runs):
        color, (epoch, value), (loss, lr) = cmap(i % cmap.N), best[run.label], curves[run.label]
        summary[run.label] = {"best_epoch": epoch, "best_value": value, "metric": metric,
                              "epochs": _run_epochs(run)}
        label = run.label + (" (no validation)" if epoch is None
                             else " (best %s %.3f @ epoch %g)" % (metric, value, epoch))
        ax_loss.plot(*(zip(*loss) if loss else ([], [])), color=color, lw=1.2, label=label)
        if lr:
            ax_lr.plot(*zip(*lr), color=color, lw=1.2)
        if epoch is not None:
            _mark_best(ax_val, panels, run, metric, (epoch, value), color, i, x_max)
    if any(loss for loss, _ in curves.values()):
        ax_loss.set_yscale("log")
    lr_values = [y for _, lr in curves.values() for _, y in lr]
    if lr_values and min(lr_values) > 0:
        ax_lr.set_yscale("log")
    if with_val:
        ax_val.set_ylim(0, max([1.0] + [v * 1.15 for _, v in best.values() if v is not None]))
    for a, title in zip(panels, [loss_key] + titles[1:]):
        a.set_ylabel(title)
        a.grid(True, alpha=0.3)
    panels[-1].set_xlabel("epoch")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_title("%d run%s: %s" % (len(runs), "s" * (len(runs) != 1), ", ".join(titles)))
    fig.tight_layout()
    return fig, summary


def plot_runs(run_dirs, path, labels=None, metric=None):
    """Read the work dirs ``run_dirs`` (:func:`load_run`; labels default :func:`run_labels`) and
    write :func:`compare_runs_figure` as a PNG to ``path`` (atomically). ``metric``: the
    ``metrics.csv`` column of the best epochs; None is AP, which a run may lack, while a metric
    named explicitly must be a column of some run (:class:`MetricsFileError` otherwise).
    Returns ``(path, summary)``."""
    labels = list(labels) if labels else run_labels(run_dirs)
    if len(labels) != len(run_dirs):
        raise ValueError("%d labels for %d runs" % (len(labels), len(run_dirs)))
    runs = [load_run(d, lab) for d, lab in zip(run_dirs, labels)]
    if metric is not None and not any(run.epochs and metric in run.epochs[0] for run in runs):
        raise MetricsFileError("--metric %s: no %s of the runs has that column" % (metric, EPOCH_CSV))
    fig, summary = compare_runs_figure(runs, metric=metric or "AP")
    return save_png(fig, path), summary
