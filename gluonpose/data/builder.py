"""Training records from the ``data`` config section (one or several datasets mixed by ratio)."""
import logging

from ..errors import ConfigError
from .datasets import CombinedDataset, build_dataset
from .datasets.base import format_skipped

LOG = logging.getLogger(__name__)


def build_train_records(data_cfg, seed=0):
    """``data.train`` (list of ``{type, ..., ratio}``) -> a sequence of PersonRecord.

    Every dataset gets ``on_bad`` from ``data.on_bad`` unless its entry sets it. Several entries are
    mixed by :class:`CombinedDataset` with their ``ratio`` (default 1.0).
    """
    specs = [dict(s) for s in data_cfg["train"]]
    if not specs:
        raise ConfigError("no training data: data.train is empty (see configs/ for examples)")
    ratios, built, names = [], [], []
    for spec in specs:
        ratios.append(float(spec.pop("ratio", 1.0)))
        spec.setdefault("on_bad", data_cfg["on_bad"])
        names.append(spec.get("type"))
        built.append(build_dataset(**spec))
    if len(built) == 1 and ratios[0] == 1.0:
        records = built[0]
        LOG.info("training set: %s, %d people", names[0], len(records))
    else:
        records = CombinedDataset(built, ratios=ratios, names=names, seed=seed)
        LOG.info("training set: %s", records.summary())
    LOG.info("training data: %s", skip_summary(records))
    return records


def skip_summary(records):
    """One line: people, images and the records skipped at reading, by reason (and by dataset)."""
    num_images = len({r.image_path for r in records})
    text = "%d person records in %d images; skipped at reading: %s" % (
        len(records), num_images, format_skipped(getattr(records, "skipped", None)))
    by_set = getattr(records, "skipped_by_set", None)
    if by_set is not None and len(by_set()) > 1:
        text += " (%s)" % "; ".join("%s: %s" % (nm, format_skipped(c)) for nm, c in by_set().items())
    return text
