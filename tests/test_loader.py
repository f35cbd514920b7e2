"""Training loader: worker processes draw the same augmentation as the main process; bad images."""
import copy
import os

import numpy as np
import pytest

from gluonpose.codecs import build_codec
from gluonpose.data.datasets import build_dataset
from gluonpose.data.loader import BadSampleError, EpochSampler, TopDownDataset, make_train_loader
from gluonpose.data.pipeline import TopDownTrainTransform
from gluonpose.engine.distributed import ShardSampler


@pytest.fixture(scope="module")
def coco_records(data_dir):
    coco = os.path.join(data_dir, "samples", "coco")
    return build_dataset(type="coco", ann_file=os.path.join(coco, "test_coco.json"), img_prefix=coco)


def _dataset(records, **kw):
    codec = build_codec("heatmap_offset", input_size_wh=(64, 64), heatmap_size_wh=(16, 16))
    return TopDownDataset(records, TopDownTrainTransform(codec, rotation=30, rotation_sigma=None,
                                                         scale_range=(0.8, 1.2), scale_sigma=None), **kw)


def _epoch_batches(ds, epoch, workers):
    sampler = EpochSampler(ShardSampler(len(ds), shuffle=True, seed=5, batch_size=4))
    loader = make_train_loader(ds, sampler, 4, num_workers=workers)
    sampler.set_epoch(epoch)
    return [[a.asnumpy() for a in batch] for batch in loader]


def test_workers_reproduce_main_process_and_epochs_differ(coco_records):
    ds = _dataset(coco_records, seed=1)
    main = _epoch_batches(ds, 1, 0)
    forked = _epoch_batches(ds, 1, 2)
    assert len(main) == len(forked) == 3
    for b0, b1 in zip(main, forked):
        for a0, a1 in zip(b0, b1):
            np.testing.assert_array_equal(a0, a1)
    shapes = [a.shape for a in main[0]]
    assert shapes == [(4, 3, 64, 64), (4, 1, 51, 16, 16), (4, 1, 17)]
    other = _epoch_batches(ds, 2, 2)
    assert not np.array_equal(main[0][0], other[0][0])


def test_bad_image_is_skipped_or_named(coco_records, tmp_path, caplog):
    records = [copy.copy(coco_records[i]) for i in range(len(coco_records))]
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"not a jpeg")
    records[0].image_path = str(bad)
    skipping = _dataset(records, on_bad="skip")
    image, target, weight = skipping[(0, 0)]
    assert image.shape == (3, 64, 64) and np.isfinite(target).all()
    assert "corrupt.jpg" in caplog.text
    raising = _dataset(records, on_bad="raise")
    with pytest.raises(BadSampleError, match="corrupt.jpg"):
        raising[(0, 0)]
    with pytest.raises(ValueError, match="empty"):
        _dataset([])
