"""Training loader: worker processes draw the same augmentation as the main process; bad images."""
import copy
import logging
import os

import cv2
import numpy as np
import pytest

from gluonpose.codecs import build_codec
from gluonpose.data.datasets import build_dataset
from gluonpose.data.loader import BadSampleError, EpochSampler, TopDownDataset, make_train_loader
from gluonpose.data.pipeline import TopDownTrainTransform
from gluonpose.data.sampler import ShardSampler


@pytest.fixture(scope="module")
def coco_records(data_dir):
    coco = os.path.join(data_dir, "samples", "coco")
    return build_dataset(type="coco", ann_file=os.path.join(coco, "test_coco.json"), img_prefix=coco)


def _dataset(records, **kw):
    codec = build_codec("heatmap_offset", input_size_wh=(64, 64), heatmap_size_wh=(16, 16))
    return TopDownDataset(records, TopDownTrainTransform(codec, sampling="uniform", rot_factor=15,
                                                         scale_factor=0.2), **kw)


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
    assert shapes == [(4, 3, 64, 64), (4, 1, 51, 16, 16), (4, 1, 17), (4,)]
    assert not main[0][3].any()  # no bad record was passed over
    other = _epoch_batches(ds, 2, 2)
    assert not np.array_equal(main[0][0], other[0][0])


def test_bad_images_are_skipped_and_counted_or_named(coco_records, tmp_path, caplog):
    """A JPEG cut in half, a PNG cut short and garbage bytes in the training set: under
    on_bad=skip every draw of them is replaced and counted (also across worker processes) and
    each is warned about once; under on_bad=raise the error names the file."""
    src = coco_records[0].image_path
    data = open(src, "rb").read()
    png = cv2.imencode(".png", cv2.imread(src))[1].tobytes()
    bad = {0: ("half.jpg", data[:len(data) // 2]), 4: ("cut.png", png[:len(png) // 2]),
           8: ("garbage.jpg", np.random.default_rng(0).bytes(2000))}
    records = [copy.copy(coco_records[i]) for i in range(len(coco_records))]
    for i, (name, content) in bad.items():
        (tmp_path / name).write_bytes(content)
        records[i].image_path = str(tmp_path / name)
    skipping = _dataset(records, on_bad="skip")
    sampler = EpochSampler(ShardSampler(len(skipping), shuffle=True, seed=5, batch_size=4))
    sampler.set_epoch(1)
    drawn = [i for _, i in sampler][:len(sampler) // 4 * 4]
    expected = sum(i in bad for i in drawn)  # bad records are not adjacent: one retry each
    assert expected == 3
    with caplog.at_level(logging.WARNING, logger="gluonpose.data.loader"):
        for workers in (0, 2, 0):
            loader = make_train_loader(skipping, sampler, 4, num_workers=workers)
            batches = list(loader)
            assert sum(int(b[3].asnumpy().sum()) for b in batches) == expected
            assert all(np.isfinite(b[1].asnumpy()).all() for b in batches)
    assert caplog.text.count("skipping bad sample") == 3  # once per record, not per draw
    for _, (name, _) in bad.items():
        assert name in caplog.text
    raising = _dataset(records, on_bad="raise")
    for i, (name, _) in bad.items():
        with pytest.raises(BadSampleError, match=name):
            raising[(0, i)]
    with pytest.raises(ValueError, match="empty"):
        _dataset([])


def test_keep_freed_memory_leaves_samples_unchanged(coco_records):
    """glibc keeps freed memory for the next sample: applied (True) on glibc, off with 0 MB, applied by the
    dataset in the process making samples, and the samples are the same bits as without it."""
    import platform
    from gluonpose.data.loader import keep_freed_memory
    ds = _dataset(coco_records)
    before = [ds[(1, i)] for i in range(3)]
    assert keep_freed_memory(0) is False
    kept = _dataset(coco_records, keep_freed_memory_mb=256)
    after = [kept[(1, i)] for i in range(3)]
    assert kept._allocator_pid == os.getpid()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory(256) is True
    for new, old in zip(after, before):
        for a, b in zip(new, old):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_official_timer_db_matches_our_coco_records(data_dir, coco_records):
    """The official side of ``benchmark.py --loader --side-by-side`` builds its db with the official COCODataset
    conventions (restated in official_timer.coco_db, numpy only): the same people, centres and scales (x 200 px)
    as our COCO records through ``geometry.box_to_center_scale`` (official rounding), and the same joints."""
    from gluonpose.data import geometry as geo
    from gluonpose.benchmarks.official_timer import coco_db
    root = os.path.join(data_dir, "samples", "coco")
    db = coco_db(os.path.join(root, "test_coco.json"), root, (288, 384))
    assert len(db) == len(coco_records) > 0
    for rec, off in zip(coco_records, db):
        center, scale = geo.box_to_center_scale(rec.bbox, (288, 384), 1.25, udp=False)
        assert np.array_equal(off["center"], center.astype(np.float32))
        assert np.array_equal(off["scale"] * np.float32(200), scale.astype(np.float32))
        assert np.array_equal(off["joints_3d"][:, :2], np.asarray(rec.keypoints)[:, :2])
        assert np.array_equal(off["joints_3d_vis"][:, 0], np.minimum(np.asarray(rec.keypoints)[:, 2], 1))
        assert os.path.samefile(off["image"], rec.image_path)
