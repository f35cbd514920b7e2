"""Throughput of the full training data pipeline: jpg decode, augmentation, warp, target encoding."""
import os
import tempfile
import time

from ..codecs import build_codec
from .datasets import build_dataset
from .loader import EpochSampler, TopDownDataset, make_train_loader
from .pipeline import TopDownTrainTransform
from .sampler import ShardSampler

def _records(tmp, coco_dir):
    """Real COCO people from ``coco_dir`` (a folder with ``test_coco.json`` and its jpgs) when given and
    present, else generated 640x480 synthetic images."""
    ann = os.path.join(coco_dir or "", "test_coco.json")
    if coco_dir and os.path.isfile(ann):
        return build_dataset(type="coco", ann_file=ann, img_prefix=coco_dir), "COCO samples (real jpgs)"
    return (build_dataset(type="synthetic", out_dir=tmp, num_images=32, image_size_wh=(640, 480)),
            "synthetic 640x480 jpgs")


def bench_loader(input_size_wh=(288, 384), batch=32, workers=0, iters=10, coco_dir=None):
    """Print samples/s of the training pipeline in one process and through a DataLoader."""
    w, h = input_size_wh
    codec = build_codec("heatmap_offset", input_size_wh=(w, h), heatmap_size_wh=(w // 4, h // 4))
    transform = TopDownTrainTransform(codec, sampling="uniform", rot_factor=15, scale_factor=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        records, source = _records(tmp, coco_dir)
        dataset = TopDownDataset(records, transform, seed=0)
        n = max(iters * batch // 4, 64)
        dataset[(0, 0)]
        tic = time.perf_counter()
        for i in range(n):
            dataset[(1, i % len(dataset))]
        per_core = n / (time.perf_counter() - tic)
        print("loader %dx%d, %s: %.1f samples/s in one process (= per core; decode jpg, augment, "
              "warp, encode heatmap+offset targets)" % (h, w, source, per_core))
        if workers > 0:
            reps = -(-batch * iters // len(records))
            many = TopDownDataset([records[i] for i in range(len(records))] * reps, transform, seed=0)
            sampler = EpochSampler(ShardSampler(len(many), shuffle=False, batch_size=batch))
            loader = make_train_loader(many, sampler, batch, num_workers=workers)
            tic = time.perf_counter()
            count = sum(b[0].shape[0] for b in loader)
            print("loader with %d worker processes: %.1f samples/s (worker start-up included)"
                  % (workers, count / (time.perf_counter() - tic)))
    return per_core
