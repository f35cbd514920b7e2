"""Training records: a CSV of metrics and a matplotlib plot of the loss and learning-rate curves."""
import csv
import os

from .io import atomic_write


class MetricsCSV:
    """Append rows of a fixed set of columns to ``path`` (header written once)."""

    def __init__(self, path, columns):
        self.path = path
        self.columns = list(columns)
        if not os.path.isfile(path):
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def append(self, row):
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])

    def read(self):
        """All rows as a list of dicts of floats (empty cells -> None)."""
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in rows]


def plot_curves(rows, path, x_key="progress", keys=("loss", "heatmap", "offset"), lr_key="lr"):
    """Plot loss terms (log scale, left) and the learning rate (right) against epochs; write PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    xs = [r[x_key] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k in keys:
        ys = [r.get(k) for r in rows]
        if any(y is not None and y > 0 for y in ys):
            ax.plot(xs, ys, label=k)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(xs, [r.get(lr_key) for r in rows], "k--", label=lr_key, alpha=0.6)
    ax2.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path
