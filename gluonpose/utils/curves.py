"""Training records: a CSV of metrics and a matplotlib plot of the loss, learning-rate and
validation-AP curves."""
import csv
import os

from .io import atomic_write, output_guard


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
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
                for r in self._raw_rows()]


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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    val = [(r["epoch"], r[val_key]) for r in (val_rows or ())
           if r.get("epoch") is not None and r.get(val_key) is not None]
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
    import matplotlib.pyplot as plt

    fig = curves_figure(rows, x_key, keys, lr_key, val_rows, val_key)
    if fig is None:
        return None
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path
