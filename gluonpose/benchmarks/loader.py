"""Throughput of the full training data pipeline: jpg decode, augmentation, warp, target encoding.

The augmentation is the official HRNet w48 384x288 recipe's (``ROT_FACTOR`` 45, ``SCALE_FACTOR`` 0.35, official
draws: rotation with probability 0.6, flip 0.5, half body 0.3 above 8 joints), the one the official
``JointsDataset`` runs in ``scripts/benchmark.py --loader --side-by-side``, so both pipelines do the same work;
targets are heatmap+offset (ours) and Gaussian heatmaps (official). One process, one OpenCV thread: per core.
"""
import os
import tempfile
import time

from ..codecs import build_codec
from ..data.datasets import build_dataset
from ..data.loader import KEEP_FREED_MB, EpochSampler, TopDownDataset, make_train_loader
from ..data.pipeline import TopDownTrainTransform
from ..data.sampler import ShardSampler

def _records(tmp, coco_dir):
    """Real COCO people from ``coco_dir`` (a folder with ``test_coco.json`` and its jpgs) when given and
    present, else generated 640x480 synthetic images."""
    ann = os.path.join(coco_dir or "", "test_coco.json")
    if coco_dir and os.path.isfile(ann):
        return build_dataset(type="coco", ann_file=ann, img_prefix=coco_dir), "COCO samples (real jpgs)"
    return (build_dataset(type="synthetic", out_dir=tmp, num_images=32, image_size_wh=(640, 480)),
            "synthetic 640x480 jpgs")


#: the augmentation of the official ``experiments/coco/hrnet/w48_384x288_adam_lr1e-3.yaml``
OFFICIAL_W48_AUGMENT = {"sampling": "official", "rot_factor": 45.0, "scale_factor": 0.35}


def loader_samples(batch, iters):
    """Samples timed in one process (the official side of ``--side-by-side`` times as many)."""
    return max(iters * batch // 4, 64)


def bench_loader(input_size_wh=(288, 384), batch=32, workers=0, iters=10, coco_dir=None):
    """Print samples/s of the training pipeline in one process and through a DataLoader."""
    import cv2  # pylint: disable=import-outside-toplevel
    cv2.setNumThreads(1)                      # one process = one core (warpAffine would use them all)
    w, h = input_size_wh
    codec = build_codec("heatmap_offset", input_size_wh=(w, h), heatmap_size_wh=(w // 4, h // 4))
    transform = TopDownTrainTransform(codec, **OFFICIAL_W48_AUGMENT)
    with tempfile.TemporaryDirectory() as tmp:
        records, source = _records(tmp, coco_dir)
        dataset = TopDownDataset(records, transform, seed=0, keep_freed_memory_mb=KEEP_FREED_MB)  # training's
        n = loader_samples(batch, iters)
        dataset[(0, 0)]
        kept = dataset.allocator_kept         # applied by the first sample
        tic = time.perf_counter()
        for i in range(n):
            dataset[(1, i % len(dataset))]
        per_core = n / (time.perf_counter() - tic)
        print("loader %dx%d, %s, %d samples: %.1f samples/s in one process (= per core, 1 OpenCV thread, "
              "OMP_NUM_THREADS=%s; decode jpg, official w48 augmentation, warp, normalise, encode "
              "heatmap+offset targets; glibc keeps freed memory: %s)"
              % (h, w, source, n, per_core, os.environ.get("OMP_NUM_THREADS", "unset"), kept))
        if workers > 0:
            reps = -(-batch * iters // len(records))
            many = TopDownDataset([records[i] for i in range(len(records))] * reps, transform, seed=0,
                                  keep_freed_memory_mb=KEEP_FREED_MB)
            sampler = EpochSampler(ShardSampler(len(many), shuffle=False, batch_size=batch))
            loader = make_train_loader(many, sampler, batch, num_workers=workers)
            tic = time.perf_counter()
            count = sum(b[0].shape[0] for b in loader)
            print("loader with %d worker processes: %.1f samples/s (worker start-up included)"
                  % (workers, count / (time.perf_counter() - tic)))
    return per_core
