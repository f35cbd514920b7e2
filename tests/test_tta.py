"""TTA geometry against known keypoints, fusion by hand, the TTA grid and the ensemble config."""
import os
import re

import cv2
import numpy as np
import pytest

from gluonpose.codecs import HeatmapOffsetCodec
from gluonpose.data import geometry as geo
from gluonpose.data.records import PersonRecord
from gluonpose.evaluation.inference import TopDownPredictor, predict_records
from gluonpose.evaluation.oracle import OracleNet
from gluonpose.evaluation.tta import (breakdown, format_summary_table, fuse, load_ensemble_config,
                                      parse_member_spec, tta_views)

ROTATIONS = (-20.0, 0.0, 20.0)
SCALES = (0.9, 1.0, 1.1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 640x480 noise image and 3 people with known keypoints well inside their boxes."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("tta")
    path = str(folder / "noise.png")
    cv2.imwrite(path, rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    boxes = [(60.0, 40.0, 150.0, 300.0), (300.0, 90.0, 120.0, 260.0), (470.0, 150.0, 110.0, 200.0)]
    records = []
    for i, (x, y, w, h) in enumerate(boxes):
        kx = rng.uniform(x + 0.2 * w, x + 0.8 * w, 17)
        ky = rng.uniform(y + 0.1 * h, y + 0.9 * h, 17)
        kpts = np.stack([kx, ky, np.full(17, 2.0)], axis=1).astype(np.float32)
        records.append(PersonRecord(image_path=path, bbox=np.array([x, y, w, h], np.float32),
                                    keypoints=kpts, image_id=1, score=0.9, area=w * h,
                                    ann_id=i))
    return records


def _oracle_predictor(codec, records, views, flip, flip_fusion=None):
    oracle = OracleNet(codec)
    predictor = TopDownPredictor(oracle, codec, flip=flip, flip_fusion=flip_fusion, batch_size=7)
    oracle.add_records(records, [predictor.transform(r, s) for r, s in views])
    return predictor


@pytest.mark.parametrize("udp", [True, False])
@pytest.mark.parametrize("flip", [False, True])
def test_tta_maps_back_to_known_positions(scene, udp, flip):
    """Perfect outputs rendered in every rotated / rescaled crop (384x288 and a second member at
    256x192) map back to the known image positions within 0.5 px, per view and fused."""
    views = tta_views(ROTATIONS, SCALES)
    codecs = [HeatmapOffsetCodec(input_size_wh=(288, 384), udp=udp),
              HeatmapOffsetCodec(input_size_wh=(192, 256), udp=udp)]
    predictors = [_oracle_predictor(c, scene, views, flip) for c in codecs]
    res = predict_records(predictors, scene, views=views, progress=False)
    truth = np.stack([r.keypoints[:, :2] for r in scene]).astype(np.float64)     # (N, 17, 2)
    assert res.coords.shape == (2, 9, 3, 17, 2)
    err = np.linalg.norm(res.coords - truth, axis=-1)                              # (M, V, N, K)
    # Official stride + flip test: the flipped disk sits 0.75 heatmap px off (codec.flip_back), and
    # Hough voting on the averaged maps counts the half-weight ring votes: up to 0.52 px (measured)
    tol = 0.6 if flip and not udp else 0.5
    assert err.max() < tol, "worst view error %.3f px" % err.max()
    assert res.scores.min() > 0.75                                    # perfect (discretised) disks
    fused = fuse(res.coords, res.scores)
    assert np.linalg.norm(fused[..., :2] - truth, axis=-1).max() < 0.5


def test_flip_branch_is_live(scene, monkeypatch):
    """Without the codec's flip-back (no joint swap, no offset negation) the flipped crops'
    outputs spoil the map average: the oracle test above really goes through the flip branch.
    (Added vote maps would still peak at the right place: the unflipped view's votes agree.)"""
    from gluonpose.codecs.flipfuse import FlipSpec
    views = ((20.0, 1.1),)
    codec = HeatmapOffsetCodec(input_size_wh=(288, 384))
    predictor = _oracle_predictor(codec, scene, views, flip=True, flip_fusion="maps")
    c = codec.num_channels
    monkeypatch.setattr(codec, "flip_spec", lambda: FlipSpec(
        np.arange(c), np.ones(c, np.float32), np.zeros(c, np.float32), 0))
    res = predict_records(predictor, scene, views=views, progress=False)
    truth = np.stack([r.keypoints[:, :2] for r in scene])
    assert np.linalg.norm(res.coords[0, 0] - truth, axis=-1).max() > 5.0


def test_ignoring_the_rotation_would_fail(scene):
    """Sanity of the test above: mapping a 20-degree crop back without its rotation (the official
    ``transform_preds``) misplaces joints by many pixels."""
    rec = scene[0]
    center, scale = geo.box_to_center_scale(rec.bbox, (288, 384), 1.25)
    trans = geo.get_affine_transform(center, scale, 20.0, (288, 384), udp=True)
    in_crop = geo.affine_points(rec.keypoints[:, :2], trans)
    wrong = geo.crop_to_image(in_crop, center, scale, 0.0, (288, 384), udp=True)
    right = geo.crop_to_image(in_crop, center, scale, 20.0, (288, 384), udp=True)
    assert np.abs(right - rec.keypoints[:, :2]).max() < 1e-3
    assert np.linalg.norm(wrong - rec.keypoints[:, :2], axis=1).max() > 10.0


def test_fuse_by_hand():
    coords = np.zeros((2, 2, 1, 1, 2))
    scores = np.zeros((2, 2, 1, 1))
    coords[0, 0, 0, 0] = [0, 0]
    coords[0, 1, 0, 0] = [10, 0]
    coords[1, 0, 0, 0] = [0, 20]
    coords[1, 1, 0, 0] = [10, 20]
    scores[0, :, 0, 0] = [1.0, 3.0]
    scores[1, :, 0, 0] = [0.0, 0.0]
    # member 0 alone: x = (0*1 + 10*3) / 4 = 7.5, score mean 2
    np.testing.assert_allclose(fuse(coords, scores, members=[0])[0, 0], [7.5, 0.0, 2.0])
    # all four, member 1 weight 3: positions weighted by w*s (member 1 has zero scores)
    got = fuse(coords, scores, member_weights=[1.0, 3.0])[0, 0]
    np.testing.assert_allclose(got, [7.5, 0.0, (1 + 3) / 8.0])
    np.testing.assert_allclose(fuse(coords, scores, mode="mean")[0, 0], [5.0, 10.0, 1.0])
    labels = [label for label, _ in breakdown(coords, scores, ["a", "b"], ((0, 1), (20, 1)))]
    assert labels == ["member a", "member b", "view rot 0 x1", "view rot +20 x1", "ensemble"]


def test_views_and_member_specs():
    assert tta_views((-20, 0), (0.9, 1.1)) == ((-20.0, 0.9), (-20.0, 1.1), (0.0, 0.9), (0.0, 1.1))
    with pytest.raises(ValueError, match="> 0"):
        tta_views((0,), (0.0,))
    assert parse_member_spec("a/b.yaml:w/c.params") == {
        "config": "a/b.yaml", "weights": "w/c.params", "weight": 1.0, "name": "b"}
    with pytest.raises(ValueError, match="CONFIG"):
        parse_member_spec("only.yaml")


def test_ensemble_config_file(tmp_path, repo_root):
    conf = load_ensemble_config(repo_root + "/configs/ensemble/example.yaml")
    assert len(conf["members"]) >= 2
    assert list(conf["tta"]["rotations"]) == [-20, 0, 20]
    assert list(conf["tta"]["scales"]) == [0.9, 1.0, 1.1]
    bad = tmp_path / "bad.yaml"
    bad.write_text("members: [{config: a.yaml, weights: a.params}]\ntta: {rotation: [0]}\n")
    with pytest.raises(ValueError, match="rotation.*valid"):
        load_ensemble_config(str(bad))
    bad.write_text("members: [{config: a.yaml}]\n")
    with pytest.raises(ValueError, match="members\\[0\\] needs config and weights"):
        load_ensemble_config(str(bad))


def test_ensemble_config_is_checked_like_model_configs(tmp_path):
    """The ensemble YAML goes through gluonpose.config: the same type checks and messages, plus
    the file name; ``1e-2`` is a float, not the string PyYAML makes of it."""
    from gluonpose.config import load_config
    from gluonpose.errors import ConfigError
    path = tmp_path / "ens.yaml"
    member = "members: [{config: a.yaml, weights: a.params}]\n"
    path.write_text(member + "boxes: {image_thr: 1e-2}\ntta: {rotations: [-10, 10], flip: false}\n")
    conf = load_ensemble_config(str(path))
    assert conf["boxes"]["image_thr"] == 0.01 and conf["tta"]["rotations"] == [-10.0, 10.0]
    assert conf["members"] == [{"config": "a.yaml", "weights": "a.params", "weight": 1.0, "name": "a"}]
    path.write_text(member + "boxes: {image_thr: high}\n")
    with pytest.raises(ConfigError) as ens:
        load_ensemble_config(str(path))
    with pytest.raises(ConfigError) as model:
        load_config(None, ["test.image_thr=high"])
    assert str(ens.value) == "%s: %s" % (path, str(model.value).replace("test.", "boxes."))
    for text, match in (("members: [{config: a.yaml, weights: a.params, wieght: 2}]\n",
                         "unknown config key 'members\\[0\\].wieght'; valid keys of members\\[0\\]: "
                         "config, name, weight, weights"),
                        ("members: [{config: a.yaml, weights: a.params, weight: -1}]\n",
                         "members\\[0\\].weight must be finite and >= 0"),
                        ("members: {config: a.yaml}\n", "members must be a list of mappings"),
                        (member + "tta: {flip: maybe}\n", "tta.flip must be a boolean"),
                        (member + "tta: {average: median}\n", "tta.average must be one of score_weighted, mean")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(str(path)) + ": .*" + match):
            load_ensemble_config(str(path))
    assert load_ensemble_config(None)["members"] == []


def test_summary_table_layout():
    stats = {"AP": 0.5, "AP .5": 0.75, "AP .75": 0.25, "AP (M)": 0.125, "AP (L)": 1.0, "AR": 0.0}
    lines = format_summary_table([("member a", stats), ("ensemble", stats)]).splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert lines[3].split("|")[2].strip() == "0.500"


def test_members_that_share_a_config_get_distinct_names():
    from gluonpose.evaluation.tta import distinct_member_names

    def member(config, weights, name=None):
        return {"config": config, "weights": weights, "weight": 1.0,
                "name": name or os.path.splitext(os.path.basename(config))[0]}

    names = [m["name"] for m in distinct_member_names([
        member("c/w32.yaml", "runs/a/epoch_0140.params"),
        member("c/w32.yaml", "runs/b/epoch_0150.params"),
        member("c/w48.yaml", "w48.params"),                      # unique: kept
        member("c/w48x.yaml", "x/final.params", name="big"),
        member("c/w48y.yaml", "y/final.params", name="big"),     # same name and weights stem
    ])]
    assert names == ["w32 [epoch_0140]", "w32 [epoch_0150]", "w48", "big [final] #4",
                     "big [final] #5"]
    assert len(set(names)) == len(names)


def test_ensemble_script_names_members_of_one_config_apart():
    from gluonpose.tools import ensemble as ens    # scripts/ensemble_eval.py, gluonpose-ensemble
    conf = ens._settings(ens.parse_args(["--models", "c.yaml:run1/epoch_0002.params",
                                         "c.yaml:run2/epoch_0002.params", "--use-gt-boxes",
                                         "--out", "r.json"]))
    assert [m["name"] for m in conf["members"]] == ["c [epoch_0002] #1", "c [epoch_0002] #2"]
