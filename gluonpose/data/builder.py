"""Training records from the ``data`` config section (one or several datasets mixed by ratio)."""
import logging

from .datasets import CombinedDataset, build_dataset

LOG = logging.getLogger(__name__)


def build_train_records(data_cfg, seed=0):
    """``data.train`` (list of ``{type, ..., ratio}``) -> a sequence of PersonRecord.

    Every dataset gets ``on_bad`` from ``data.on_bad`` unless its entry sets it. Several entries are
    mixed by :class:`CombinedDataset` with their ``ratio`` (default 1.0).
    """
    specs = [dict(s) for s in data_cfg["train"]]
    if not specs:
        raise ValueError("no training data: data.train is empty (see configs/ for examples)")
    ratios, built, names = [], [], []
    for spec in specs:
        ratios.append(float(spec.pop("ratio", 1.0)))
        spec.setdefault("on_bad", data_cfg["on_bad"])
        names.append(spec.get("type"))
        built.append(build_dataset(**spec))
    if len(built) == 1 and ratios[0] == 1.0:
        LOG.info("training set: %s, %d people", names[0], len(built[0]))
        return built[0]
    combined = CombinedDataset(built, ratios=ratios, names=names, seed=seed)
    LOG.info("training set: %s", combined.summary() if hasattr(combined, "summary") else len(combined))
    return combined
