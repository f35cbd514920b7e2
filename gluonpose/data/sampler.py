"""Samplers over dataset indices: :class:`ShardSampler` gives each distributed worker an equal-length part.

Every worker must run the same number of steps or ``dist_sync`` hangs, hence the padding.
"""
import numpy as np
from mxnet import gluon


class ShardSampler(gluon.data.Sampler):
    """Indices of one worker's part of a dataset; all parts have the same length.

    Each epoch the order is ``np.random.default_rng([seed, epoch]).permutation(length)`` (or
    ``arange`` without shuffle), padded by wrapping around to ``ceil(length / num_parts) *
    num_parts`` entries; part ``p`` takes entries ``p, p + num_parts, ...``. Hence consecutive
    per-worker batches of size B, taken together over the parts, form exactly the consecutive
    batches of size ``B * num_parts`` of a single-worker sampler (``num_parts=1``) on the same
    padded order. ``len(sampler) == ceil(length / num_parts)`` for every part.

    With ``batch_size`` B the order is padded to whole global batches of ``B * num_parts`` and
    part ``p`` takes the p-th run of B entries of each global batch: worker p's batch is then
    exactly the slice that ``split_and_load`` would give device p of a single worker that holds
    ``num_parts`` devices (so per-device BatchNorm statistics agree too).
    """

    def __init__(self, length, num_parts=1, part_index=0, *, shuffle=True, seed=0, epoch=0,
                 batch_size=None):
        if int(length) != length or length < 1:
            raise ValueError("ShardSampler length must be a positive integer, got %r" % (length,))
        if int(num_parts) != num_parts or num_parts < 1:
            raise ValueError("num_parts must be a positive integer, got %r" % (num_parts,))
        if not 0 <= part_index < num_parts:
            raise ValueError("part_index %r is outside [0, %d)" % (part_index, num_parts))
        self._length = int(length)
        self._num_parts = int(num_parts)
        self._part_index = int(part_index)
        self._shuffle = bool(shuffle)
        self._seed = int(seed)
        self._epoch = int(epoch)
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError("batch_size must be a positive integer, got %r" % (batch_size,))
        self._batch = None if batch_size is None else int(batch_size)

    def set_epoch(self, epoch):
        """Select the epoch whose shuffled order the next iteration uses."""
        self._epoch = int(epoch)

    def indices(self):
        """(len(self),) int64 array of this part's dataset indices for the current epoch."""
        if self._shuffle:
            order = np.random.default_rng([self._seed, self._epoch]).permutation(self._length)
        else:
            order = np.arange(self._length)
        total = len(self) * self._num_parts
        padded = np.resize(order, total)   # wraps around (repeatedly if num_parts > length)
        if self._batch is not None:
            blocks = padded.reshape(-1, self._num_parts, self._batch)
            return blocks[:, self._part_index].reshape(-1).astype(np.int64)
        return padded[self._part_index::self._num_parts].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        if self._batch is not None:
            return -(-self._length // (self._num_parts * self._batch)) * self._batch
        return -(-self._length // self._num_parts)
