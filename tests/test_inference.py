"""Top-down inference: flip test, multi-context split, bad images, and evaluate_model end to end
with a perfect (oracle) network on the real COCO and CrowdPose samples (pycocotools is the truth)."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluonpose.codecs import HeatmapOffsetCodec
from gluonpose.config import load_config
from gluonpose.data.datasets.coco import CocoKeypoints, CrowdPoseKeypoints
from gluonpose.data.records import PersonRecord
from gluonpose.errors import DatasetError
from gluonpose.evaluation.inference import TopDownPredictor, forward_batch, predict_records
from gluonpose.evaluation.oracle import OracleNet
from gluonpose.evaluation.runner import evaluate_model, make_validate_hook


@pytest.fixture(scope="module")
def noise_records(tmp_path_factory):
    """Two noise images, 7 boxes (one image holds 5)."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("inf")
    records = []
    for img in range(2):
        path = str(folder / ("img%d.png" % img))
        cv2.imwrite(path, rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
        for j in range(5 if img == 0 else 2):
            box = np.array([10 + 40 * j, 20 + 5 * j, 60 + 10 * j, 120], np.float32)
            records.append(PersonRecord(image_path=path, bbox=box,
                                        keypoints=np.zeros((17, 3), np.float32), image_id=img + 1,
                                        score=0.5 + 0.1 * j))
    return records


@pytest.fixture(scope="module")
def tiny_net():
    """A random 2-layer conv net with HRNet's output geometry (51 channels at 1/4 resolution) and
    clearly non-zero, not flip-symmetric outputs; initialised on two CPU contexts."""
    mx.random.seed(5)
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(8, 3, padding=1, activation="relu"),
            mx.gluon.nn.Conv2D(51, 4, strides=4))
    net.initialize(mx.init.Normal(0.5), ctx=[mx.cpu(0), mx.cpu(1)])
    net.hybridize()
    return net


class FlipSymmetric:
    """net'(x) = (g(x) + flip_back(g(flip x))) / 2: exactly flip-equivariant for a UDP codec."""

    def __init__(self, net, codec):
        self.net, self.codec = net, codec

    def __call__(self, x):
        a = self.net(x).asnumpy()
        b = self.codec.flip_back(self.net(mx.nd.flip(x, axis=3)).asnumpy())
        return mx.nd.array((a + b) * 0.5, ctx=x.context)


def test_flip_test_is_identity_for_a_flip_equivariant_net(noise_records, tiny_net):
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    net = FlipSymmetric(tiny_net, codec)
    plain = predict_records(TopDownPredictor(net, codec, flip=False), noise_records, progress=False)
    flipped = predict_records(TopDownPredictor(net, codec, flip=True), noise_records,
                              progress=False)
    np.testing.assert_allclose(flipped.coords, plain.coords, atol=1e-4)
    np.testing.assert_allclose(flipped.scores, plain.scores, atol=1e-5)
    # the raw net is not flip-equivariant: there the flip test changes the answer
    raw = predict_records(TopDownPredictor(tiny_net, codec, flip=True), noise_records,
                          progress=False)
    raw_plain = predict_records(TopDownPredictor(tiny_net, codec, flip=False), noise_records,
                                progress=False)
    assert np.abs(raw.coords - raw_plain.coords).max() > 1.0


def test_multi_context_split_matches_single(noise_records, tiny_net):
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    ctx2 = [mx.cpu(0), mx.cpu(1)]
    one = predict_records(TopDownPredictor(tiny_net, codec, flip=False, batch_size=32),
                          noise_records, progress=False)
    two = predict_records(TopDownPredictor(tiny_net, codec, ctx=ctx2, flip=False, batch_size=3),
                          noise_records, progress=False)    # batches 3, 3, 1: uneven and < 2
    np.testing.assert_allclose(two.coords, one.coords, atol=1e-3)
    np.testing.assert_allclose(two.scores, one.scores, atol=1e-4)
    crops = np.zeros((1, 3, 96, 64), np.float32)
    assert forward_batch(tiny_net, crops, ctx2).shape == (1, 51, 24, 16)
    np.testing.assert_array_equal(one.image_ids, [1, 1, 1, 1, 1, 2, 2])
    np.testing.assert_allclose(one.box_scores, [r.score for r in noise_records])
    # official OKS area: padded box (aspect 64:96, x1.25), e.g. box 60x120 -> 80x120 -> 100x150
    assert one.areas[0] == pytest.approx(100.0 * 150.0)


def test_unreadable_image_raise_or_skip(noise_records, tiny_net, tmp_path):
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    missing = PersonRecord(image_path=str(tmp_path / "gone.jpg"), bbox=np.array([0, 0, 50, 80.0]),
                           keypoints=np.zeros((17, 3)), image_id=9)
    records = noise_records[:2] + [missing]
    pred = TopDownPredictor(tiny_net, codec, flip=False)
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        predict_records(pred, records, progress=False)
    res = predict_records(pred, records, progress=False, on_bad_image="skip")
    np.testing.assert_array_equal(res.record_index, [0, 1])
    assert res.coords.shape == (1, 1, 2, 17, 2)


def test_truncated_or_corrupt_images_raise_or_skip(noise_records, tiny_net, tmp_path, data_dir):
    """A JPEG cut in half, a JPEG with bytes missing inside its scan, a PNG cut short and garbage
    bytes: named errors, or their boxes dropped."""
    jpeg = open(os.path.join(data_dir, "samples", "coco", "000000000785.jpg"), "rb").read()
    png = open(noise_records[0].image_path, "rb").read()
    from test_pipeline import damage_scan
    broken = {"half.jpg": jpeg[:len(jpeg) // 2], "cut.png": png[:len(png) // 2],
              "damaged_scan.jpg": damage_scan(jpeg),
              "garbage.png": np.random.default_rng(1).bytes(4000)}
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    pred = TopDownPredictor(tiny_net, codec, flip=False)
    for k, (name, content) in enumerate(broken.items()):
        (tmp_path / name).write_bytes(content)
        bad = PersonRecord(image_path=str(tmp_path / name), bbox=np.array([0, 0, 50, 80.0]),
                           keypoints=np.zeros((17, 3)), image_id=9)
        records = noise_records[5:] + [bad]
        with pytest.raises(DatasetError, match=name.replace(".", r"\.")):
            predict_records(pred, records, progress=False)
        res = predict_records(pred, records, progress=False, on_bad_image="skip")
        np.testing.assert_array_equal(res.record_index, [0, 1])
        assert np.isfinite(res.coords).all()


def _sample(data_dir, name):
    folder = os.path.join(data_dir, "samples", name)
    return os.path.join(folder, "test_%s.json" % name), folder


def _oracle(codec, records):
    oracle = OracleNet(codec)
    return oracle.add_records(records, [TopDownPredictor(oracle, codec).transform()])


@pytest.mark.parametrize("flip", [True, False])
def test_evaluate_model_perfect_net_scores_ap_one(data_dir, flip):
    """Perfect outputs for the labelled COCO people, GT boxes: AP and AR are exactly 1."""
    gt, folder = _sample(data_dir, "coco")
    codec = HeatmapOffsetCodec(input_size_wh=(192, 256))
    oracle = _oracle(codec, CocoKeypoints(gt, folder).records)
    stats = evaluate_model(oracle, codec, gt, img_prefix=folder, flip=flip)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_evaluate_model_perturbed_net_loses_ap(data_dir):
    """The same oracle told positions 12 px off: pycocotools gives a lower AP."""
    gt, folder = _sample(data_dir, "coco")
    codec = HeatmapOffsetCodec(input_size_wh=(192, 256))
    records = CocoKeypoints(gt, folder).records
    oracle = OracleNet(codec)
    transform = TopDownPredictor(oracle, codec).transform()
    for rec in records:
        shifted = rec.keypoints.copy()
        shifted[:, 0] += 12.0
        oracle.add_records([PersonRecord(rec.image_path, rec.bbox, shifted, rec.image_id)],
                           [transform])
    stats = evaluate_model(oracle, codec, gt, img_prefix=folder, flip=False)
    assert stats["AP"] < 0.9


def test_evaluate_model_crowdpose_shared_joints(data_dir, tmp_path):
    """CrowdPose GT (14 joints): COCO-17 predictions scored on the 12 shared joints. Some of its
    joints lie outside their GT-box crops: the oracle renders them (``label_outside=True``, a
    network that places joints just outside the crop); with the default targets they get weight 0
    and no position, so the same oracle scores lower."""
    gt, folder = _sample(data_dir, "crowdpose")
    records = CrowdPoseKeypoints(gt, folder).records
    default = HeatmapOffsetCodec(input_size_wh=(192, 256))
    stats = evaluate_model(_oracle(default, records), default, gt, img_prefix=folder, flip=False,
                           layout="crowdpose")
    assert stats["AP"] < 0.95
    codec = HeatmapOffsetCodec(input_size_wh=(192, 256), label_outside=True)
    oracle = _oracle(codec, records)
    out = str(tmp_path / "cp.json")
    stats = evaluate_model(oracle, codec, gt, img_prefix=folder, flip=True, layout="crowdpose", out_json=out)
    assert stats["AP"] == pytest.approx(1.0)
    import json
    results = json.load(open(out))
    assert results and all(len(r["keypoints"]) == 36 for r in results)


def test_validate_hook_from_config(data_dir, tmp_path):
    gt, folder = _sample(data_dir, "coco")
    cfg = load_config(None, ["model.name=hrnet_w8", "codec.input_size=[96,128]",
                             "codec.heatmap_size=[24,32]", "test.use_gt_boxes=true",
                             "data.val={type: coco, ann_file: %s, img_prefix: %s}" % (gt, folder)])
    codec = HeatmapOffsetCodec(input_size_wh=(96, 128))
    oracle = _oracle(codec, CocoKeypoints(gt, folder).records)
    validate = make_validate_hook(cfg, out_dir=str(tmp_path))
    row = validate(oracle, 3)
    assert row["AP"] == pytest.approx(1.0) and len(row) == 10
    assert os.path.isfile(tmp_path / "val_epoch3.json")


# ---------------------------------------------------------------- the evaluation pipeline
@pytest.fixture(scope="module")
def mixed_records(noise_records, tmp_path_factory):
    """The noise boxes with an unreadable image between the two readable ones, and a third
    image, so batches span images and a skipped image sits mid-stream."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(11)
    third = str(folder / "third.png")
    cv2.imwrite(third, rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    bad = str(folder / "missing.jpg")
    extra = [PersonRecord(image_path=bad, bbox=np.array([5, 5, 60, 90.0]), keypoints=np.zeros((17, 3)),
                          image_id=7, score=0.9)]
    extra += [PersonRecord(image_path=third, bbox=np.array([10 + 30 * j, 15, 70, 110.0]),
                           keypoints=np.zeros((17, 3)), image_id=8, score=0.3 + 0.1 * j)
              for j in range(4)]
    return noise_records[:5] + extra + noise_records[5:]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_pipeline_equals_the_sequential_loop(mixed_records, tiny_net, workers):
    """Two members (batch sizes 3 and 4: batches span images), two views, flip test (the map
    average, the one flip test the former loop had), one image skipped: the pipeline gives
    bit-identical predictions to the former sequential loop, with any number of loader threads."""
    from _sequential_inference import predict_records_sequential
    big = HeatmapOffsetCodec(input_size_wh=(64, 96))
    preds = [TopDownPredictor(tiny_net, big, flip=True, flip_fusion="maps", batch_size=3, name="a"),
             TopDownPredictor(tiny_net, big, flip=True, flip_fusion="maps", batch_size=4, name="b")]
    views = ((0.0, 1.0), (20.0, 0.9))
    ref = predict_records_sequential(preds, mixed_records, views=views, on_bad_image="skip")
    got = predict_records(preds, mixed_records, views=views, progress=False, on_bad_image="skip",
                          workers=workers)
    for field in ("coords", "scores", "box_scores", "areas", "image_ids", "record_index"):
        np.testing.assert_array_equal(getattr(got, field), getattr(ref, field), err_msg=field)
    assert 5 not in got.record_index and len(got.record_index) == len(mixed_records) - 1


def test_pipeline_results_json_is_byte_identical(data_dir, tmp_path):
    """The results json of an evaluation (real COCO sample, detection boxes, flip test) is the
    same file, byte for byte, from the sequential loop and from the pipeline."""
    from _sequential_inference import predict_records_sequential
    from gluonpose.evaluation.gt_layout import prepare_eval_target
    from gluonpose.evaluation.runner import evaluate_predictor, load_test_boxes, score_keypoints
    gt, folder = _sample(data_dir, "coco")
    det = os.path.join(folder, "test_coco_det_AP_H_56.json")
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    mx.random.seed(2)
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(8, 3, padding=1, activation="relu"), mx.gluon.nn.Conv2D(51, 4, strides=4))
    net.initialize(mx.init.Normal(0.5))
    pred = TopDownPredictor(net, codec, flip=True, flip_fusion="maps", batch_size=16)
    boxes = load_test_boxes(gt, folder, det_json=det)
    res = predict_records_sequential(pred, boxes.records)
    target = prepare_eval_target(gt, "coco", str(tmp_path))
    score_keypoints(res.keypoints(), res.box_scores, res.areas, res.image_ids, target,
                    str(tmp_path / "sequential.json"))
    for workers in (0, 2):
        out = str(tmp_path / ("pipeline%d.json" % workers))
        evaluate_predictor(pred, gt, img_prefix=folder, det_json=det, out_json=out, workers=workers)
        assert open(out, "rb").read() == open(str(tmp_path / "sequential.json"), "rb").read()


class _Exploding:
    """A net that fails on its n-th call."""

    def __init__(self, net, n):
        self.net, self.n, self.calls = net, n, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("boom in forward %d" % self.n)
        return self.net(x)


class _BadCodec(HeatmapOffsetCodec):
    def decode(self, outputs):
        raise RuntimeError("boom in decode")

    def decode_flip(self, outputs, flipped, fusion="maps", *, inplace=False):
        raise RuntimeError("boom in decode")


def test_pipeline_errors_stop_every_stage(mixed_records, tiny_net):
    """An error in the forward pass, in the decoder or a bad image ('raise') ends the call with
    that error (no hang, no thread left behind)."""
    import threading
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="boom in forward 3"):
        predict_records(TopDownPredictor(_Exploding(tiny_net, 3), codec, batch_size=2), mixed_records,
                        progress=False, on_bad_image="skip", workers=2)
    with pytest.raises(RuntimeError, match="boom in decode"):
        predict_records(TopDownPredictor(tiny_net, _BadCodec(input_size_wh=(64, 96)), batch_size=2),
                        mixed_records, progress=False, on_bad_image="skip", workers=2)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predict_records(TopDownPredictor(tiny_net, codec, batch_size=2), mixed_records,
                        progress=False, workers=2)
    assert threading.active_count() == before


def test_pipeline_stats_count_every_stage(mixed_records, tiny_net):
    from gluonpose.evaluation.inference import PipelineStats
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    stats = PipelineStats()
    predict_records(TopDownPredictor(tiny_net, codec, batch_size=4), mixed_records, progress=False,
                    on_bad_image="skip", workers=2, stats=stats, views=((0.0, 1.0), (10.0, 1.0)))
    assert stats.boxes == 2 * (len(mixed_records) - 1) and stats.images == 3
    assert all(v > 0 for v in stats.seconds.values()) and stats.wall > 0


def test_pipeline_error_while_waiting_for_the_first_batch_does_not_hang(mixed_records, tiny_net):
    """The producer fails while the forward thread waits for its first batch (regression: the
    forward thread waited forever)."""
    import threading
    codec = HeatmapOffsetCodec(input_size_wh=(64, 96))
    records = mixed_records[:6]              # 5 boxes (fewer than a batch), then the missing image
    outcome = []

    def run():
        try:
            predict_records(TopDownPredictor(tiny_net, codec, batch_size=32), records,
                            progress=False, workers=2)
        except FileNotFoundError as err:
            outcome.append(err)

    for _ in range(5):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive(), "predict_records hung"
    assert len(outcome) == 5 and all("missing.jpg" in str(e) for e in outcome)
