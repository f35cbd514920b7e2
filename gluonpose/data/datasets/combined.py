"""A dataset mixing several readers with per-dataset sampling ratios.

A ratio ``r`` turns a set of ``n`` records into ``round(r * n)`` draws: ``floor(r * n / n)`` full
copies plus a random subset (without replacement) of the remainder. ``r = 0.5`` keeps half of the set,
``r = 2.0`` repeats it twice, ``r = 1.5`` once fully plus a random half. The subsets come from an
``np.random.Generator`` seeded with ``(seed, dataset index)``, so they are deterministic and one
set's ratio does not change another set's draw; :meth:`CombinedDataset.resample` draws anew
(e.g. once per epoch).
"""
import logging
import math
from collections import Counter

import numpy as np
from ...errors import ConfigError, DatasetError

LOG = logging.getLogger(__name__)


def _dataset_name(ds, index):
    name = getattr(ds, "dataset_name", "") or ""
    if not name and len(ds) and getattr(ds[0], "dataset", ""):
        name = ds[0].dataset
    return name or f"set{index}"


def ratio_indices(num, ratio, rng):
    """(round(ratio * num),) int64 record indices of one set, sorted (see module docstring)."""
    total = int(round(ratio * num))
    if num == 0 or total == 0:
        return np.zeros(0, dtype=np.int64)
    full, rem = divmod(total, num)
    parts = [np.arange(num, dtype=np.int64)] * full
    if rem:
        parts.append(np.sort(rng.choice(num, size=rem, replace=False)).astype(np.int64))
    return np.concatenate(parts)


class CombinedDataset:
    """Several datasets (readers or sequences of PersonRecord) seen as one.

    Args:
        datasets: sequence of datasets, each with ``__len__`` / ``__getitem__`` -> PersonRecord.
        ratios: one finite ratio >= 0 per dataset (default 1.0 each).
        names: one name per dataset for the summary (default: the reader's ``dataset_name``).
        seed: seed of the subsampling.

    ``self[i]`` returns a PersonRecord; the order is dataset by dataset (shuffle in the loader).
    """

    def __init__(self, datasets, ratios=None, names=None, seed=0):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ConfigError("CombinedDataset needs at least one dataset")
        n = len(self.datasets)
        ratios = [1.0] * n if ratios is None else list(ratios)
        if len(ratios) != n:
            raise ConfigError(f"CombinedDataset: {n} datasets but {len(ratios)} ratios")
        for i, r in enumerate(ratios):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
                raise ConfigError(f"CombinedDataset: ratio of dataset {i} must be a finite number "
                                  f">= 0, got {r!r}")
        self.ratios = [float(r) for r in ratios]
        names = [_dataset_name(ds, i) for i, ds in enumerate(self.datasets)] if names is None \
            else [str(x) for x in names]
        if len(names) != n:
            raise ConfigError(f"CombinedDataset: {n} datasets but {len(names)} names")
        self.names = [nm if names.count(nm) == 1 else f"{nm}#{i}" for i, nm in enumerate(names)]
        self.resample(seed)

    def resample(self, seed):
        """Draw the subsets again with ``seed`` (deterministic)."""
        self.seed = seed
        per_set = [ratio_indices(len(ds), r, np.random.default_rng([int(seed), i]))
                   for i, (ds, r) in enumerate(zip(self.datasets, self.ratios))]
        self._set_index = np.concatenate(
            [np.full(len(ix), i, dtype=np.int64) for i, ix in enumerate(per_set)])
        self._record_index = np.concatenate(per_set)
        if len(self._set_index) == 0:
            raise DatasetError(f"CombinedDataset is empty: {self.counts()}")
        LOG.info("CombinedDataset (seed %s): %s", seed, self.summary())

    def __len__(self):
        return int(len(self._set_index))

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"CombinedDataset index must be an int, got {type(index).__name__}")
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"CombinedDataset index {index} out of range [0, {len(self)})")
        return self.datasets[self._set_index[index]][int(self._record_index[index])]

    @property
    def skipped(self):
        """Counter of the records the sub-readers skipped (summed over the datasets)."""
        total = Counter()
        for ds in self.datasets:
            total.update(getattr(ds, "skipped", None) or {})
        return total

    def skipped_by_set(self):
        """``{name: {reason: count}}`` of the sub-readers that skipped something."""
        return {nm: dict(ds.skipped) for nm, ds in zip(self.names, self.datasets)
                if getattr(ds, "skipped", None)}

    def counts(self):
        """``{name: {'source': n records, 'ratio': r, 'used': drawn count}}``."""
        used = np.bincount(getattr(self, "_set_index", np.zeros(0, np.int64)),
                           minlength=len(self.datasets))
        return {nm: {"source": len(ds), "ratio": r, "used": int(u)}
                for nm, ds, r, u in zip(self.names, self.datasets, self.ratios, used)}

    def summary(self):
        """One line: ``coco 12 x1.0 -> 12, mpii 5 x2.0 -> 10; total 22``."""
        parts = [f"{nm} {c['source']} x{c['ratio']:g} -> {c['used']}"
                 for nm, c in self.counts().items()]
        return ", ".join(parts) + f"; total {sum(c['used'] for c in self.counts().values())}"
