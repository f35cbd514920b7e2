"""End to end against the official HRNet test path, as a user runs it.

``tests/data/reference/official_e2e_coco_{gt,det}_w8.npz`` hold what the official code
(``validate`` -> ``COCODataset.evaluate``, config ``w32_256x192_adam_lr1e-3.yaml`` at width 8) produced
on the COCO sample: for the 12 ground-truth boxes and for the 118 boxes of the person detector
(``test_coco_det_AP_H_56.json``). Here the official weights go through ``scripts/convert_official.py``
and ``scripts/test_mshrnet.py`` runs with ``configs/hrnet/hrnet_w32_256x192_coco.yaml`` (only the width
overridden), exactly as the README tells a user to reproduce the official numbers. Then:

* crops: identical to the official network inputs (SHA-256 of every ground-truth crop); for the
  detector boxes, whose crops are not stored, the centre and the pixel scale every crop is made from
  are bit-identical to the official float32 ``_xywh2cs`` values, and the joints below (which a single
  grey level moves through this random net) check the pixels;
* joints: >= 99% within 0.01 px of the official ``get_final_preds`` keypoints, and any other joint only
  where the official heatmap (ours for the detector boxes, whose official heatmaps are not stored) has
  a near-tie within float32 noise, i.e. the argmax or the quarter-pixel direction is a coin toss;
* joint scores and the flip-averaged heatmaps within float32 noise;
* the same results kept after rescoring and OKS-NMS, and the same pycocotools AP and OKS matrices.

Nothing here knows these boxes: the comparison holds for any box and image.
"""
import contextlib
import hashlib
import io
import json
import os

import mxnet as mx
import numpy as np
import pytest

from _helpers import load_reference, load_script, run_main

CONFIG = os.path.join("configs", "hrnet", "hrnet_w32_256x192_coco.yaml")
WIDTH8 = ["model.name=hrnet_w8"]
#: float32 noise of a heatmap value, relative to the heatmaps' range: measured 9e-6 (GT boxes) and
#: 4e-6 (detector boxes) between the official PyTorch and these MXNet outputs.
NOISE = 5e-5


@pytest.fixture(scope="module")
def runs(repo_root, coco, tmp_path_factory):
    """``runs(kind)``: the run on the ground-truth (``gt``) or detector (``det``) boxes, made once."""
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = _run(kind, repo_root, coco, tmp_path_factory)
        return cache[kind]
    return get


def _run(kind, repo_root, coco, tmp_path_factory):
    """Convert the official weights and run scripts/test_mshrnet.py with the official config."""
    ref = load_reference("official_e2e_coco_%s_w8.npz" % kind)
    meta = json.loads(str(ref["meta"]))
    folder = tmp_path_factory.mktemp("e2e_" + kind)
    checkpoint = str(folder / "pose_hrnet_w8.npz")        # the official state_dict, official names
    np.savez(checkpoint, **{k: v for k, v in ref.items() if k.startswith("param:")})
    weights = str(folder / "pose_hrnet_w8.params")
    code, text = run_main(load_script("convert_official").main, [
        "--src", checkpoint, "--dst", weights, "--arch", "hrnet_w8", "--kind", "pose",
        "--head", "heatmap", "--strict"])
    assert code == 0 and "missing: 0 network arrays" in text, text
    config = os.path.join(repo_root, CONFIG)
    out = str(folder / "results.json")
    boxes = ["--det-json", coco["det"]] if kind == "det" else ["--use-gt-boxes"]
    from gluonpose.tools import test as tool

    assert load_script("test_mshrnet").main is tool.main      # the script is this tool
    argv = ["--config", config, "--weights", weights, "--gt-json", coco["gt"], "--img-prefix",
            coco["dir"], "--out", out, "--no-progress"] + boxes + WIDTH8
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = tool.run(tool.parse_args(argv))              # main() minus the exit code
    from gluonpose.config import load_config
    from gluonpose.evaluation.inference import TopDownPredictor
    from gluonpose.evaluation.runner import load_test_boxes
    from gluonpose.models.builder import build_net_from_config

    cfg = load_config(config, WIDTH8)
    net, codec = build_net_from_config(cfg, weights, [mx.cpu()])
    records = load_test_boxes(coco["gt"], coco["dir"], det_json=coco["det"] if kind == "det" else None,
                              image_thr=cfg.test.image_thr).records
    return {"kind": kind, "ref": ref, "report": report, "text": buf.getvalue(), "out": out,
            "cfg": cfg, "records": records, "codec": codec,
            "predictor": TopDownPredictor(net, codec, flip=cfg.test.flip),
            "eps": NOISE * max(abs(v) for v in meta["heatmap_range"])}


#: the official experiments/coco/hrnet/w{W}_{H}x{w}_adam_lr1e-3.yaml values and README APs
OFFICIAL_ROWS = {
    "hrnet_w32_256x192_coco": (32, (192, 256), (48, 64), 2, 32, 0.744),
    "hrnet_w32_384x288_coco": (32, (288, 384), (72, 96), 3, 32, 0.758),
    "hrnet_w48_256x192_coco": (48, (192, 256), (48, 64), 2, 32, 0.751),
    "hrnet_w48_384x288_coco": (48, (288, 384), (72, 96), 3, 24, 0.763),
}


@pytest.mark.parametrize("row", sorted(OFFICIAL_ROWS))
def test_official_rows_build_for_training_and_testing(repo_root, row):
    """Each configs/hrnet row is the official yaml: model, Gaussian target (sigma 2 / 3), schedule,
    augmentation factors, test settings; its codec, train transform and loss build."""
    from gluonpose.config import load_config
    from gluonpose.errors import ConfigError
    from gluonpose.data.pipeline import TopDownTrainTransform
    from gluonpose.models.losses import PoseLoss
    from gluonpose.engine.runner import build_codec_from_config

    width, size, hm_size, sigma, batch, ap = OFFICIAL_ROWS[row]
    cfg = load_config(os.path.join(repo_root, "configs", "hrnet", row + ".yaml"))
    assert (cfg.model.name, cfg.model.head) == ("hrnet_w%d" % width, "heatmap")
    assert cfg.model.pretrained.endswith(("hrnet_w32-36af842e.pth", "hrnet_w48-8ef0771d.pth")[width == 48])
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    assert (codec.input_size_wh, codec.heatmap_size_wh, codec.sigma) == (size, hm_size, sigma)
    assert not codec.udp and not codec.unbiased and codec.decoder == "quarter" and codec.shift_flip
    t = cfg.train
    assert (t.optimizer, t.lr, t.wd, tuple(t.lr_steps), t.lr_factor, t.epochs) == \
        ("adam", 1e-3, 0.0, (170, 200), 0.1, 210)
    a = cfg.augment
    assert (a.sampling, a.rot_factor, a.scale_factor, a.flip_prob, a.half_body_prob,
            a.half_body_min_joints) == ("official", 45, 0.35, 0.5, 0.3, 8)
    assert cfg.loader.batch_size_per_device == batch
    assert (cfg.test.flip, cfg.test.use_gt_boxes, cfg.test.image_thr, cfg.test.in_vis_thr,
            cfg.test.oks_thr) == (True, False, 0.0, 0.2, 0.9)
    assert cfg.data.det_json.endswith("COCO_val2017_detections_AP_H_56_person.json")
    assert cfg.reference.checkpoint == "pose_hrnet_w%d_%dx%d.pth" % (width, size[1], size[0])
    assert cfg.reference.val_ap == ap
    with pytest.raises(ConfigError, match="reference.val_ap must be a number in"):
        load_config(os.path.join(repo_root, "configs", "hrnet", row + ".yaml"),
                    ["reference.val_ap=%g" % (100 * ap)])              # a percentage, not an AP
    TopDownTrainTransform(codec, **dict(cfg.augment))
    PoseLoss(codec.layout, cfg.model.num_joints, **dict(cfg.loss))


def _samples(case, rows=None):
    """The test crops of ``rows`` (all by default), made as test_mshrnet.py makes them."""
    from gluonpose.data.imageio import read_image

    transform = case["predictor"].transform()
    rows = range(len(case["records"])) if rows is None else rows
    return [transform(read_image(case["records"][i].image_path), case["records"][i]) for i in rows]


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_the_config_is_the_official_recipe(runs, kind):
    case = runs(kind)
    cfg, codec = case["cfg"], case["codec"]
    assert (codec.input_size_wh, codec.heatmap_size_wh, codec.sigma) == ((192, 256), (48, 64), 2.0)
    assert not codec.udp and codec.decoder == "quarter" and codec.shift_flip
    assert cfg.test.flip and cfg.test.in_vis_thr == 0.2 and cfg.test.oks_thr == 0.9
    assert cfg.reference.checkpoint == "pose_hrnet_w32_256x192.pth" and cfg.reference.val_ap == 0.744
    assert "reference: pose_hrnet_w32_256x192.pth gives AP 0.744" in case["text"]
    n = len(case["ref"]["center"])
    assert case["report"].num_boxes == n == (12 if case["kind"] == "gt" else 118)


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_boxes_centres_and_scales_are_the_official_float32_ones(runs, kind):
    case = runs(kind)
    ref, res = case["ref"], case["report"].predictions
    samples = _samples(case)
    centers = np.array([s["center"] for s in samples])
    scales = np.array([s["scale"] for s in samples])
    np.testing.assert_array_equal(centers, ref["center"])
    # the official crop uses scale * 200 in float32 (get_affine_transform's scale_tmp)
    np.testing.assert_array_equal(scales, ref["scale"] * np.float32(200.0))
    # OKS-NMS areas (official np.prod(s * 200)), box scores and images
    np.testing.assert_array_equal(res.areas, ref["all_boxes"][:, 4])
    np.testing.assert_array_equal(res.box_scores, ref["score"])
    np.testing.assert_array_equal(res.image_ids, ref["image_id"])


def test_crops_are_the_official_network_inputs(runs):
    """Ground-truth boxes (the detector-box reference stores no crops: its joints check them)."""
    case = runs("gt")
    ref = case["ref"]
    samples = _samples(case)
    digests = [hashlib.sha256(np.ascontiguousarray(s["image"], np.float32).tobytes()).hexdigest()
               for s in samples]
    assert digests == list(ref["crops_sha256"])
    np.testing.assert_array_equal(np.stack([s["image"] for s in samples[:2]]), ref["crops_first"])
    # and the network + flip test (+ one-pixel shift) give the official flip-averaged heatmaps
    heatmaps = case["predictor"].outputs(np.stack([s["image"] for s in samples]))
    assert np.abs(heatmaps - ref["heatmaps"]).max() <= case["eps"]


def _official_choice(coords_hm):
    """Integer argmax and quarter-pixel direction (-1, 0, +1 per axis) of official heatmap coords."""
    arg = np.floor(np.asarray(coords_hm, np.float64) + 0.5)
    return arg.astype(np.int64), np.sign(coords_hm - arg).astype(np.int64)


def near_tie(heatmap, official_hm, ours_hm, eps):
    """Whether two decodes of one (H, W) heatmap differ only by a float32 coin toss: both maxima
    within ``eps`` of each other, or the same argmax with neighbours within ``eps`` on every axis
    where the quarter-pixel directions differ, or a maximum within ``eps`` of 0 (official zeroing)."""
    (ax, ay), sa = _official_choice(official_hm)
    (bx, by), sb = _official_choice(ours_hm)
    if heatmap.max() <= eps:
        return True
    if (ax, ay) != (bx, by):
        return abs(float(heatmap[ay, ax]) - float(heatmap[by, bx])) <= eps
    for axis in (0, 1):
        if sa[axis] != sb[axis]:
            dx, dy = (1, 0) if axis == 0 else (0, 1)
            if abs(float(heatmap[ay + dy, ax + dx]) - float(heatmap[ay - dy, ax - dx])) > eps:
                return False
    return True


def test_near_tie_rule():
    hm = np.zeros((8, 8), np.float32)
    hm[3, 3], hm[3, 5] = 10.0, 10.0 - 1e-4                  # two maxima a float32 hair apart
    assert near_tie(hm, [3.0, 3.0], [5.0, 3.0], 1e-3)
    assert not near_tie(hm, [3.0, 3.0], [5.0, 3.0], 1e-5)
    hm[3, 4], hm[3, 2] = 5.0, 5.0 + 1e-4                     # quarter direction on x: a tie
    assert near_tie(hm, [3.25, 3.0], [2.75, 3.0], 1e-3)
    hm[3, 2] = 6.0                                           # a real difference is not
    assert not near_tie(hm, [3.25, 3.0], [2.75, 3.0], 1e-3)


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_joints_match_the_official_keypoints(runs, kind):
    case = runs(kind)
    ref, res, eps = case["ref"], case["report"].predictions, case["eps"]
    ours = res.keypoints(0, 0)
    official = ref["preds"].astype(np.float64)
    err = np.linalg.norm(ours[..., :2] - official[..., :2], axis=-1)
    close = err <= 0.01
    assert close.mean() >= 0.99, "%d of %d joints off" % ((~close).sum(), close.size)
    np.testing.assert_allclose(ours[..., 2], official[..., 2], rtol=0, atol=eps)
    rows = sorted(set(np.argwhere(~close)[:, 0].tolist()))
    if rows:                                   # every other joint: a near-tie of the heatmap
        samples = _samples(case, rows)
        outputs = case["predictor"].outputs(np.stack([s["image"] for s in samples]))
        coords, _ = case["codec"].decode(outputs)
        ours_hm = coords / np.asarray(case["codec"].stride)
        heatmaps = ref["heatmaps"][rows] if "heatmaps" in ref else outputs
        for i, n in enumerate(rows):
            for k in np.flatnonzero(~close[n]):
                assert near_tie(heatmaps[i, k], ref["coords_hm"][n, k], ours_hm[i, k], eps), \
                    "box %d joint %d: %s px off without a heatmap near-tie" % (n, k, err[n, k])


def _by_image(results):
    out = {}
    for r in results:
        out.setdefault(int(r["image_id"]), []).append(r)
    return out


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_same_results_kept_after_rescoring_and_oks_nms(runs, kind):
    case = runs(kind)
    ref, eps = case["ref"], case["eps"]
    with open(case["out"]) as f:
        ours = _by_image(json.load(f))
    official = _by_image(json.loads(str(ref["results_json"])))
    assert sorted(ours) == sorted(official)
    assert case["report"].num_results == sum(len(v) for v in official.values())
    for img in official:
        assert len(ours[img]) == len(official[img]), img
        for a, b in zip(ours[img], official[img]):        # NMS selection order within the image
            ka = np.reshape(a["keypoints"], (-1, 3))
            kb = np.reshape(b["keypoints"], (-1, 3))
            assert (np.linalg.norm(ka[:, :2] - kb[:, :2], axis=1) <= 0.01).mean() >= 0.99
            assert a["score"] == pytest.approx(b["score"], abs=eps)


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_same_pycocotools_ap_and_oks(runs, kind, coco):
    case = runs(kind)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    evals = []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(coco["gt"])
        for results in (json.load(open(case["out"])), json.loads(str(case["ref"]["results_json"]))):
            ev = COCOeval(gt, gt.loadRes(results), "keypoints")
            ev.params.useSegm = None
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            evals.append(ev)
    ours, official = evals
    official_ap = json.loads(str(case["ref"]["ap_json"]))["AP"]
    assert ours.stats[0] == pytest.approx(official_ap, abs=1e-3)
    assert case["report"].stats["AP"] == pytest.approx(official_ap, abs=1e-3)
    np.testing.assert_allclose(ours.stats, official.stats, atol=1e-3)
    # the OKS of every (kept pose, person) pair, which every AP figure is made of
    assert sorted(ours.ious) == sorted(official.ious)
    for key, oks in official.ious.items():
        np.testing.assert_allclose(np.asarray(ours.ious[key]), np.asarray(oks), atol=1e-4)
