"""Multi-process loading of fixed-shape training batches.

* :class:`TopDownDataset` turns PersonRecords into ``(image (3,h,w), target (S,C,H,W),
  target_weight (S,K), skipped)`` with a generator seeded by (seed, epoch, index): MXNet's DataLoader forks its
  workers once with the dataset, and they would otherwise share numpy's global RNG state.
* The epoch travels *inside the index*: the sampler yields ``(epoch, index)`` pairs, so workers that
  hold a copy of the dataset from the first epoch still draw each epoch's augmentation.
* Sharding by kvstore rank with equal-length parts (every worker runs the same number of steps, or
  ``dist_sync`` hangs), and ``last_batch='discard'`` so every step has the same global batch.
"""
import ctypes
import gc
import itertools
import logging
import os

import numpy as np
from mxnet import gluon

from ..errors import ConfigError, DatasetError
from .imageio import read_image
from .pipeline import sample_rng

LOG = logging.getLogger(__name__)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20                  # glibc's largest M_MMAP_THRESHOLD on 64-bit
KEEP_FREED_MB = 256                             # loader.keep_freed_memory_mb's default


def keep_freed_memory(trim_mb=KEEP_FREED_MB):
    """Let glibc's allocator keep freed memory for the next sample (``loader.keep_freed_memory_mb``).

    Every sample allocates a few MB of fresh arrays (decoded image, crop, targets). With glibc's
    defaults arrays above ~1 MB are mapped and unmapped, or the heap is trimmed after each sample,
    so every sample pays ~1000 page faults on fresh zeroed pages (~1 ms at 384x288, as much as
    warp, normalisation and encoding together). Serving allocations up to 32 MB from the heap
    (``M_MMAP_THRESHOLD``) and keeping up to ``trim_mb`` MB of free heap (``M_TRIM_THRESHOLD``)
    lets the next sample reuse the pages: the process's RSS stays at its peak instead of dropping
    between samples or batches. Values are unchanged. Applies to this process (and processes forked
    from it later); :class:`TopDownDataset` calls it in each process that makes samples. Returns
    True when applied (glibc), False elsewhere or ``trim_mb <= 0``.
    """
    if trim_mb is None or int(trim_mb) <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):        # not glibc (macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = min(int(trim_mb), 2047) << 20
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, trim))


def release_freed_memory():
    """Collect garbage and give the allocator's free memory back to the system (glibc
    ``malloc_trim``): after the readers' Python records became a RecordTable, the pages they
    held would otherwise stay in the training process and be inherited by every loader
    process. Returns True where glibc did it."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


class BadSampleError(DatasetError, RuntimeError):
    """A sample whose image or annotation cannot be turned into a training example."""


def make_sample(records, index, transform, *, seed, epoch, report=False):
    """The sample dict of ``records[index]`` in ``epoch``: its image read and transformed with the
    generator :func:`~.pipeline.sample_rng` gives that record and epoch (what training feeds the
    network; ``report``: the transform also records its random draws). A bad image or record
    raises :class:`BadSampleError` naming the record and file."""
    record = records[index]
    try:
        image = read_image(record.image_path)
        kwargs = {"report": True} if report else {}
        return transform(image, record, sample_rng(seed, epoch, index), **kwargs)
    except (OSError, ValueError) as err:  # DatasetError / MissingFileError of read_image, and
        raise BadSampleError(             # the transforms' record checks (ValueError)
            "record %d (image_id %s, ann %s, %s): %s"
            % (index, record.image_id, record.ann_id, record.image_path, err)) from err


class TopDownDataset(gluon.data.Dataset):
    """Records + transform -> training tuples; index is ``(epoch, i)`` or a plain ``i`` (epoch 0).

    Args:
        records: sequence of PersonRecord (``__len__`` and ``__getitem__``).
        transform: a :class:`~gluonpose.data.pipeline.TopDownTrainTransform` (or test transform with
            a codec).
        seed: base seed of the augmentation.
        on_bad: ``'raise'`` (error naming the file and record) or ``'skip'`` (log it once, use the
            next record instead so batches keep their shape, at most ``max_retries`` times, and
            count it in the sample's ``skipped``).
        keep_freed_memory_mb: > 0: :func:`keep_freed_memory` in every process that makes samples
            (the loader's worker processes, or the training process with ``num_workers`` 0), applied
            at its first sample; 0: the C library's default.
    """

    def __init__(self, records, transform, seed=0, on_bad="skip", max_retries=8, keep_freed_memory_mb=0):
        if on_bad not in ("raise", "skip"):
            raise ConfigError("data.on_bad must be 'raise' or 'skip', got %r" % on_bad)
        if len(records) == 0:
            raise DatasetError("the training set is empty: check the annotation files in the config")
        self.records = records
        self.transform = transform
        self.seed = int(seed)
        self.on_bad = on_bad
        self.max_retries = int(max_retries)
        self.keep_freed_memory_mb = int(keep_freed_memory_mb or 0)
        self._allocator_pid = None            # the process keep_freed_memory was applied in
        self.allocator_kept = False           # what keep_freed_memory returned there
        self._warned = set()

    def __len__(self):
        return len(self.records)

    def _sample(self, epoch, index):
        sample = make_sample(self.records, index, self.transform, seed=self.seed, epoch=epoch)
        target = np.asarray(sample["target"], np.float32)
        weight = np.asarray(sample["target_weight"], np.float32)
        if target.ndim == 3:  # one target shared by all stages
            target, weight = target[None], weight[None]
        return sample["image"], target, weight

    def __getitem__(self, key):
        """``(image, target, weight, skipped)``: ``skipped`` (int32) counts the bad records passed over
        to produce this sample, so the training loop can count them across worker processes."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.keep_freed_memory_mb > 0 and self._allocator_pid != os.getpid():
            self.allocator_kept = keep_freed_memory(self.keep_freed_memory_mb)
            self._allocator_pid = os.getpid()
        for attempt in range(self.max_retries + 1):
            i = (index + attempt) % len(self.records)
            try:
                return self._sample(epoch, i) + (np.int32(attempt),)
            except BadSampleError as err:
                if self.on_bad == "raise":
                    raise
                if i not in self._warned:  # once per record and process, not on every draw
                    self._warned.add(i)
                    LOG.warning("skipping bad sample (%s); using record %d instead (counted in the "
                                "epoch's 'skipped' column)", err, (i + 1) % len(self.records))
        raise BadSampleError("%d consecutive bad samples from record %d on: giving up"
                             % (self.max_retries + 1, index))


class EpochSampler(gluon.data.Sampler):
    """Wraps a shard sampler with ``set_epoch``; yields ``(epoch, index)`` pairs. ``skip``: the
    first samples of the epoch already trained on (a run resumed mid-epoch): the same order,
    starting after them."""

    def __init__(self, sampler, epoch=0):
        self.sampler = sampler
        self.epoch = epoch
        self.skip = 0

    def set_epoch(self, epoch, skip=0):
        self.epoch = int(epoch)
        self.skip = int(skip)
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, int(i)) for i in itertools.islice(self.sampler, self.skip, None))

    def __len__(self):
        return max(len(self.sampler) - self.skip, 0)


def make_train_loader(dataset, sampler, batch_size, num_workers=0):
    """DataLoader over ``dataset`` drawing ``(epoch, index)`` from ``sampler`` (an EpochSampler);
    incomplete last batches are discarded (fixed shapes, equal step counts across workers)."""
    batch_sampler = gluon.data.BatchSampler(sampler, batch_size, last_batch="discard")
    if len(batch_sampler) == 0:
        raise ConfigError("per-worker batch size %d (loader.batch_size_per_device x devices) is larger "
                          "than this worker's %d samples" % (batch_size, len(sampler)))
    return gluon.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                                 thread_pool=False)
