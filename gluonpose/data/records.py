"""The one record type every dataset reader yields and every pipeline consumes."""
import pickle
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonRecord:
    """One person instance of one image, already mapped onto the COCO-17 keypoint order.

    Attributes:
        image_path: absolute or root-relative path of the image file.
        bbox: (4,) ``[x, y, w, h]`` box in image pixels (0-based, x right, y down); the COCO readers
            and detection files keep float64 (the official box -> centre arithmetic starts there).
        keypoints: (17, 3) float32 ``[x, y, v]`` in image pixels; ``v`` follows COCO:
            0 = not labelled (or not provided by the source dataset), 1 = labelled but occluded,
            2 = visible. Unmapped COCO joints of other datasets have ``v = 0`` and must get
            target weight 0 (ignored, never trained towards zero).
        image_id: integer image id (COCO ``image_id`` for COCO-style sets, a stable index otherwise).
        score: detection score (1.0 for ground-truth boxes).
        area: instance area in pixels^2 (COCO segmentation area when known, else box area).
        dataset: short name of the source dataset (``coco``, ``mpii``, ``aic``, ``crowdpose``, ...).
        ann_id: annotation id in the source file (-1 for detections), used in error messages.
    """

    image_path: str
    bbox: np.ndarray
    keypoints: np.ndarray
    image_id: int
    score: float = 1.0
    area: float = 0.0
    dataset: str = ""
    ann_id: int = -1
    extra: dict = field(default_factory=dict)

    @property
    def num_visible(self):
        """Number of labelled keypoints (v > 0)."""
        return int((self.keypoints[:, 2] > 0).sum())


class RecordTable:
    """PersonRecords stored column by column in numpy arrays (a sequence of PersonRecord).

    A list of 600k PersonRecord objects (each a Python object with its own dict and two small
    arrays) is copied page by page into every forked loader process as the objects' reference
    counts change when samples are drawn (measured: +21 KiB per sample drawn, per process;
    docs/benchmarks.md). Here the same records are a few flat arrays whose pages are only read
    in the loader processes, so they stay shared. ``table[i]`` builds the PersonRecord of row
    ``i`` on the fly, equal to the one stored (same values and dtypes; ``extra`` pickled).
    """

    def __init__(self, records):
        n = len(records)
        first = records[0] if n else None
        joints = first.keypoints.shape if n else (17, 3)
        self.bbox = np.zeros((n, 4), np.float64)
        self.bbox_f32 = np.zeros(n, bool)
        self.keypoints = np.zeros((n,) + tuple(joints), np.float32)
        self.image_id = np.zeros(n, np.int64)
        self.ann_id = np.zeros(n, np.int64)
        self.score = np.zeros(n, np.float64)
        self.area = np.zeros(n, np.float64)
        self.dataset_index = np.zeros(n, np.int32)
        self.path_index = np.zeros(n, np.int64)
        self.extra_index = np.zeros(n, np.int64)
        strings = _StringPool()
        for i, r in enumerate(records):
            if r.keypoints.shape != tuple(joints):
                raise ValueError("record %d has %s keypoints, the table %s" % (i, r.keypoints.shape, joints))
            self.bbox[i] = r.bbox
            self.bbox_f32[i] = np.asarray(r.bbox).dtype == np.float32
            self.keypoints[i] = r.keypoints
            self.image_id[i], self.ann_id[i] = r.image_id, r.ann_id
            self.score[i], self.area[i] = r.score, r.area
            self.dataset_index[i] = strings.add(r.dataset.encode("utf-8"))
            self.path_index[i] = strings.add(r.image_path.encode("utf-8"))
            self.extra_index[i] = strings.add(pickle.dumps(r.extra, protocol=4)) if r.extra else -1
        self._blob, self._offsets = strings.freeze()
        for name in ("skipped", "skipped_by_set"):   # the readers' counts, for the logs
            if hasattr(records, name):
                setattr(self, name, getattr(records, name))

    def __len__(self):
        return len(self.image_id)

    def _bytes(self, k):
        return bytes(self._blob[self._offsets[k]:self._offsets[k + 1]])

    def _string(self, k):
        return self._bytes(k).decode("utf-8")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("record %d of %d" % (i, len(self)))
        extra = self.extra_index[i]
        return PersonRecord(
            image_path=self._string(self.path_index[i]),
            bbox=self.bbox[i].astype(np.float32 if self.bbox_f32[i] else np.float64),
            keypoints=self.keypoints[i].copy(), image_id=int(self.image_id[i]),
            score=float(self.score[i]), area=float(self.area[i]),
            dataset=self._string(self.dataset_index[i]), ann_id=int(self.ann_id[i]),
            extra=pickle.loads(self._bytes(extra)) if extra >= 0 else {})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self):
        """Bytes of the table's arrays."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


class _StringPool:
    """Unique byte strings -> indices; frozen into one uint8 array and offsets."""

    def __init__(self):
        self.index, self.items = {}, []

    def add(self, text):
        k = self.index.get(text)
        if k is None:
            k = self.index[text] = len(self.items)
            self.items.append(text)
        return k

    def freeze(self):
        offsets = np.zeros(len(self.items) + 1, np.int64)
        np.cumsum([len(b) for b in self.items], out=offsets[1:])
        blob = np.frombuffer(b"".join(self.items), np.uint8).copy()
        return blob, offsets
