"""The data-at-scale benchmark's generator and memory probes (gluonpose/benchmarks/data_scale.py)
on a small record set: exact counts per reader, the sample images reused, the four files read
by the training builders, PSS readings."""
import os

from gluonpose.benchmarks.data_scale import generate, measure, pss_mib

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "samples")


def test_generated_record_set_has_the_asked_sizes(tmp_path):
    from gluonpose.data.datasets.factory import build_dataset
    counts = {"coco": 100, "mpii": 37, "aic": 250, "crowdpose": 41}
    files = generate(SAMPLES, str(tmp_path), counts)
    assert sorted(files) == sorted(counts)
    assert generate(SAMPLES, str(tmp_path), counts) == files   # cached: made once
    for name, (ann, prefix) in files.items():
        records = build_dataset(name, ann_file=ann, img_prefix=prefix).records
        # the readers keep what the samples keep: every copy of a kept sample annotation
        sample = build_dataset(name, ann_file=os.path.join(SAMPLES, name, "test_%s.json" % name),
                               img_prefix=prefix).records
        assert 0 < len(records) <= counts[name]
        assert {r.image_path for r in records} <= {r.image_path for r in sample}
        assert len(records) >= counts[name] * len(sample) // max(len(sample), 1) // 3


def test_measure_reports_startup_and_pss(tmp_path):
    files = generate(SAMPLES, str(tmp_path), {"coco": 30, "mpii": 10, "aic": 20, "crowdpose": 10})
    lines = []
    res = measure(files, batches=3, batch=2, workers=2, size_wh=(48, 64), say=lines.append)
    assert res["startup_s"] > 0 and res["records"] > 0
    assert res["peak_pss_mib"] > pss_mib(os.getpid()) * 0.5
    assert lines[-1].startswith("RESULT data-scale startup s: ")
    assert any("2 loader processes" in line for line in lines)


def test_record_table_round_trips_every_reader():
    """RecordTable (columnar training records) gives back every record of the four sample
    readers and of their combination exactly: values, dtypes, extras; indexing like a list."""
    import numpy as np
    import pytest
    from gluonpose.data.datasets.combined import CombinedDataset
    from gluonpose.data.datasets.factory import build_dataset
    from gluonpose.data.records import RecordTable
    readers = [build_dataset(n, ann_file=os.path.join(SAMPLES, n, "test_%s.json" % n),
                             img_prefix=os.path.join(SAMPLES, n))
               for n in ("coco", "mpii", "aic", "crowdpose")]
    combined = CombinedDataset(readers, ratios=[1.0, 2.0, 0.5, 1.0],
                               names=["coco", "mpii", "aic", "crowdpose"], seed=3)
    for records in [r.records for r in readers] + [combined]:
        table = RecordTable(records)
        assert len(table) == len(records)
        for k, (a, b) in enumerate(zip(records, table)):
            assert a.image_path == b.image_path and a.dataset == b.dataset, k
            for name in ("bbox", "keypoints"):
                x, y = np.asarray(getattr(a, name)), getattr(b, name)
                assert x.dtype == y.dtype and np.array_equal(x, y), (k, name)
            assert (a.image_id, a.score, a.area, a.ann_id, a.extra) == \
                (b.image_id, b.score, b.area, b.ann_id, b.extra), k
        assert table[-1].ann_id == records[len(records) - 1].ann_id
        with pytest.raises(IndexError):
            table[len(table)]
    assert getattr(RecordTable(combined), "skipped", None) == getattr(combined, "skipped", None)
