"""The summary printed at the end of a training run: what was reached, where the outputs are, and
the commands to try next."""
import os
import shlex

from .checkpoint import find_latest


def _duration(seconds):
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return "%d h %02d min %02d s" % (h, m, s) if h else "%d min %02d s" % (m, s)


def _cmd(*parts):
    return " ".join(shlex.quote(str(p)) for p in parts)


def _summary_head(history, seconds, cpu_seconds, last, aps):
    head = "training finished"
    if history:
        head += ": %d epoch(s) this run, up to epoch %d" % (len(history), history[-1]["epoch"])
    if seconds is not None:
        head += ", in %s" % _duration(seconds)
        if cpu_seconds is not None:
            head += " (CPU time of the training process %s)" % _duration(cpu_seconds)
    lines = [head]
    if last.get("loss") is not None:
        lines.append("  final training loss %.4g" % last["loss"])
    if aps:
        best = max(aps, key=lambda e_ap: e_ap[1])
        lines.append("  validation AP %.3f after epoch %d (best %.3f after epoch %d)"
                     % (aps[-1][1], aps[-1][0], best[1], best[0]))
    return lines


def _summary_outputs(work_dir, weights, preview, aps):
    lines = ["outputs in %s:" % work_dir]
    from .checkpoint import read_best
    best = read_best(work_dir)
    outputs = [("checkpoint", weights, "the last epoch's weights; latest.json names it"),
               ("best", os.path.join(work_dir, best["params"]) if best else None,
                "the best validation %s's weights (%.3f, epoch %d)" % (
                    best.get("metric", "AP"), best["value"], best["epoch"]) if best else ""),
               ("curves", os.path.join(work_dir, "curves.png"),
                "loss and learning rate" + (", validation AP" if aps else "")),
               ("metrics", os.path.join(work_dir, "metrics.csv"),
                "per epoch; iterations.csv per logged step"),
               ("predictions", preview.path if preview else None,
                "%d validation images, %d of %d people with joints drawn"
                % (preview.images, preview.people_drawn, preview.people) if preview else ""),
               ("config", os.path.join(work_dir, "config.yaml"), "the merged config of this run"),
               ("log", os.path.join(work_dir, "log.txt"), "")]
    for name, path, note in outputs:
        if path and os.path.exists(path):
            lines.append("  %-12s %s%s" % (name, path, "  (%s)" % note if note else ""))
    return lines


def _summary_next(work_dir, weights, preview, box_file, last, record):
    config = os.path.join(work_dir, "config.yaml")
    lines = ["next:", "  evaluate (COCO AP, pycocotools table) with the error analysis (report.html):",
             "    " + _cmd("python", "scripts/test_mshrnet.py", "--config", config, "--weights",
                           weights, "--use-gt-boxes", "--out",
                           os.path.join(work_dir, "val_results.json"), "--analyze",
                           os.path.join(work_dir, "analysis")),
             "  see what the augmentation feeds the network:",
             "    " + _cmd("python", "scripts/browse_samples.py", config, "--out",
                           os.path.join(work_dir, "samples.png")),
             "  compare this run with others (loss, learning rate, validation AP, best epochs):",
             "    " + _cmd("python", "scripts/plot_curves.py", work_dir, "OTHER_WORK_DIR", "--out",
                           os.path.join(work_dir, "compare.png"))]
    if preview is not None and box_file:
        lines.append("  draw every validation image:")
        lines.append("    " + _cmd("python", "scripts/demo.py", "--config", config, "--weights",
                                   weights, "--image", preview.image_dir, "--boxes", box_file,
                                   "--out", os.path.join(work_dir, "demo") + os.sep))
    lines.append("  train longer (continues from the last checkpoint):")
    lines.append("    " + _cmd("python", "scripts/train_mshrnet.py", "--config", config, "--resume",
                               "train.epochs=%d" % (2 * int(last.get("epoch") or
                                                            record.get("epoch") or 1))))
    lines.append("  train on COCO (see docs/datasets.md):")
    lines.append("    " + _cmd("python", "scripts/train_mshrnet.py", "--config",
                               "configs/mshrnet/mshrnet_w32_1stage_256x192_coco.yaml", "--gpus", "0"))
    return lines


def run_summary(work_dir, history, seconds=None, preview=None, box_file=None, cpu_seconds=None):
    """Text of the end-of-training summary.

    Args:
        work_dir: the run's work dir (``latest.json``, ``config.yaml``, CSVs, ``curves.png``).
        history: per-epoch rows of this run (``fit``'s return value; may be empty when resuming
            a finished run).
        seconds: wall time of the run; cpu_seconds: CPU time of the training process.
        preview: the :class:`~gluonpose.demo.preview.Preview` drawn, if any.
        box_file: the validation boxes json written for ``scripts/demo.py``, if any.
    """
    record = find_latest(work_dir) or {}
    weights = os.path.join(work_dir, record["params"]) if record.get("params") else None
    last = history[-1] if history else (record.get("metrics") or {})
    aps = [(row["epoch"], row["AP"]) for row in history if row.get("AP") is not None]
    lines = _summary_head(history, seconds, cpu_seconds, last, aps)
    lines += _summary_outputs(work_dir, weights, preview, aps)
    if weights:
        lines += _summary_next(work_dir, weights, preview, box_file, last, record)
    return "\n".join(lines)
