"""gluonpose-browse (scripts/browse_samples.py): a contact sheet of augmented training samples.

All runs use the embedded default config (configs/synthetic, heatmap+offset codec with the Hough
decoder) on a few generated synthetic images in tmp_path; no network is built. Checked
independently of the tool's own numbers: the samples are remade with the training transform and
the loader's generator, their targets decoded with the codec, and the drawn crosses found in the
PNG at the joints.
"""
import os
import re

import cv2
import numpy as np
import pytest

from _helpers import load_script, run_main
from gluonpose.codecs.builder import build_codec_from_config
from gluonpose.codecs.common import feature_stride
from gluonpose.config import load_config
from gluonpose.data.builder import build_train_records
from gluonpose.data.imageio import read_image
from gluonpose.data.pipeline import TopDownTestTransform, TopDownTrainTransform, sample_rng
from gluonpose.evaluation.visualize import DECODED_COLOR_BGR, caption_tile, tile_grid
from gluonpose.tools.browse import parse_args, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "configs", "synthetic", "mshrnet_w8_2stage_128x96_synthetic.yaml")
#: Hough decoding of a clean disk+offset target: every disk pixel p votes at p + R o(p) = u, the
#: joint, exactly; only the float32 offsets round (measured ~1e-6 heatmap px).
HOUGH_BOUND = 1e-3
SUMMARY = re.compile(r"^(\d+) (train|val) samples of (\d+) records \((\w+)\): (\d+) flipped, "
                     r"(\d+) half-body, rotation (\S+)\.\.(\S+) deg, scale (\S+)\.\.(\S+); the target "
                     r"decoded by the heatmap_offset codec lands within (\S+) heatmap px of the "
                     r"joints \(max over (\d+) joints\)$")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Overrides pointing the default config at 12 training / 4 validation synthetic images."""
    folder = tmp_path_factory.mktemp("browse")
    return ["data.train=[{type: synthetic, out_dir: %s, num_images: 12, seed: 0, max_people: 1, "
            "occlusion_prob: 0.15}]" % (folder / "train"),
            "data.val={type: synthetic, out_dir: %s, num_images: 4, seed: 1, max_people: 1}"
            % (folder / "val"),
            "train.work_dir=%s" % (folder / "work")]


def _browse(argv):
    return run_main(load_script("browse_samples").main, argv)


def _run(argv):
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return run(parse_args(argv))


def _tile_geometry(codec, lines=3):
    """(bar height, crop height, crop width) of one tile: crops enlarged to >= 224 x 256 px."""
    w, h = codec.input_size_wh
    scale = max(1.0, 224.0 / w, 256.0 / h)
    return 22 + 18 * (lines - 1), int(round(h * scale)), int(round(w * scale)), scale


def test_sheet_has_one_tile_per_sample_and_a_summary(data, tmp_path):
    out = str(tmp_path / "sheet.png")
    code, text = _browse([DEFAULT, "-o", out, "-n", "6", "--columns", "4"] + data)
    assert code == 0, text
    path, summary = text.strip().splitlines()
    assert path == out
    m = SUMMARY.match(summary)
    assert m, summary
    assert m.group(1, 2, 3, 4) == ("6", "train", "12", "synthetic")
    sheet = cv2.imread(out)
    codec = build_codec_from_config(load_config(DEFAULT).codec, 17)
    bar, h, w, _ = _tile_geometry(codec)
    assert sheet is not None and sheet.shape == (2 * (bar + h), 4 * w, 3)
    assert (sheet[bar + h:, 2 * w:] == 255).all()     # the 2 empty cells of the second row


def test_same_seed_same_picture_other_seed_other_picture(data, tmp_path):
    paths = [str(tmp_path / name) for name in ("a.png", "b.png", "c.png")]
    for path, seed in zip(paths, (0, 0, 1)):
        code, text = _browse([DEFAULT, "-o", path, "-n", "4", "--seed", str(seed)] + data)
        assert code == 0, text
    a, b, c = (open(p, "rb").read() for p in paths)
    assert a == b
    assert cv2.imread(paths[0]).shape == cv2.imread(paths[2]).shape
    assert not np.array_equal(cv2.imread(paths[0]), cv2.imread(paths[2]))


def test_samples_are_the_training_samples_and_their_decoded_target_lands_on_the_joints(data,
                                                                                       tmp_path):
    """Each tile is the sample the training loader makes of its record (seed, epoch 0); decoding
    its target with the codec gives the joints (checked here, and found drawn in the PNG)."""
    out = str(tmp_path / "sheet.png")
    res = _run([DEFAULT, "-o", out, "-n", "6", "--seed", "3", "--columns", "3"] + data)
    cfg = load_config(DEFAULT, data)
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    records = build_train_records(cfg.data, seed=cfg.train.seed)
    transform = TopDownTrainTransform(codec, **dict(cfg.augment))
    stride = feature_stride(codec.input_size_wh, codec.heatmap_size_wh, codec.udp)
    sheet = cv2.imread(out)
    bar, h, w, scale = _tile_geometry(codec)
    worst, joints = 0.0, 0
    assert len(res.indices) == len(set(res.indices)) == 6
    for tile, (i, got) in enumerate(zip(res.indices, res.samples)):
        sample = transform(read_image(records[i].image_path), records[i], sample_rng(3, 0, i))
        assert np.array_equal(sample["image"], got["image"])
        assert sample["flipped"] == got["augmentation"]["flipped"]
        assert sample["rotation"] == np.float32(got["augmentation"]["rotation"])
        coords = codec.decode(sample["target"][None])[0][0]
        weight = np.asarray(sample["target_weight"]).reshape(-1, 17)[-1]
        kps = sample["keypoints"]
        use = (kps[:, 2] > 0) & (weight > 0)
        assert use.sum() >= 8
        d = np.linalg.norm((coords[use] - kps[use, :2]) / stride, axis=1)
        worst, joints = max(worst, float(d.max())), joints + int(use.sum())
        # the cross is drawn at the joint: a decoded-colour pixel within one pixel of it
        r, c = divmod(tile, 3)
        for x, y in kps[use, :2]:
            px = c * w + int(round(x * scale))
            py = r * (bar + h) + bar + int(round(y * scale))
            patch = sheet[py - 1:py + 2, px - 1:px + 2]
            assert (patch == DECODED_COLOR_BGR).all(-1).any(), (tile, x, y)
    assert worst < HOUGH_BOUND
    assert res.max_distance == pytest.approx(worst, abs=1e-9) and res.off_map == 0
    assert "max over %d joints" % joints in res.summary


def test_forced_flip_and_half_body_are_reported(data, tmp_path):
    out = str(tmp_path / "forced.png")
    code, text = _browse([DEFAULT, "-o", out, "-n", "5", "augment.flip_prob=1",
                          "augment.half_body_prob=1"] + data)
    assert code == 0, text
    m = SUMMARY.match(text.strip().splitlines()[1])
    assert m and m.group(5, 6) == ("5", "5"), text
    res = _run([DEFAULT, "-o", out, "-n", "5", "augment.flip_prob=1", "augment.half_body_prob=1"]
               + data)
    assert all(s["augmentation"]["flipped"] and s["augmentation"]["half_body"] and s["flipped"]
               for s in res.samples)
    assert all(lines[1] == "flip yes  half-body yes" for lines in res.captions)
    assert res.max_distance < HOUGH_BOUND
    # and the default config's own augmentation (flip 0.5, half-body 0) reports both kinds of sample
    res = _run([DEFAULT, "-o", out, "-n", "12"] + data)
    flips = [s["augmentation"]["flipped"] for s in res.samples]
    assert any(flips) and not all(flips)
    assert not any(s["augmentation"]["half_body"] for s in res.samples)


def test_val_stage_uses_the_test_transform(data, tmp_path):
    out = str(tmp_path / "val.png")
    res = _run([DEFAULT, "--stage", "val", "-o", out, "-n", "16"] + data)
    m = SUMMARY.match(res.summary)
    assert m, res.summary
    assert m.group(2, 5, 6) == ("val", "0", "0") and int(m.group(1)) == res.num_records
    assert float(m.group(7)) == float(m.group(8)) == 0.0
    assert float(m.group(9)) == float(m.group(10)) == 1.0
    assert all(lines[0].startswith("synthetic rec ")
               and lines[1:] == ["flip no  half-body no", "rot +0.0 deg  scale 1.000"]
               for lines in res.captions)
    cfg = load_config(DEFAULT, data)
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    test = TopDownTestTransform(codec=codec)
    from gluonpose.data.datasets import CocoStyleReader
    from gluonpose.evaluation.runner import resolve_val_set
    gt_json, prefix, layout = resolve_val_set(cfg.data.val)
    records = CocoStyleReader(gt_json, prefix, layout=layout).records
    for i, got in zip(res.indices, res.samples):
        want = test(read_image(records[i].image_path), records[i])
        assert np.array_equal(want["image"], got["image"])
    assert res.max_distance < HOUGH_BOUND
    assert cv2.imread(out) is not None


def test_default_config_as_is(tmp_path, monkeypatch):
    """`gluonpose-browse configs/synthetic/...yaml` with nothing else: the data is generated (into
    the working directory, as training does) and the sheet written into the work dir."""
    monkeypatch.chdir(tmp_path)
    code, text = _browse([DEFAULT, "-n", "4"])
    assert code == 0, text
    path, summary = text.strip().splitlines()
    assert path == os.path.join("work_dirs", "synthetic_w8_2stage", "browse_train_seed0.png")
    assert cv2.imread(path) is not None
    assert SUMMARY.match(summary).group(1, 3) == ("4", "600"), summary


@pytest.mark.parametrize("argv, message", [
    (["missing.yaml"], "config file not found"),
    ([DEFAULT, "augment.no_such_key=1"], "unknown config key 'augment.no_such_key'"),
    ([DEFAULT, "-n", "0"], "-n/--num must be >= 1, got 0"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, text = _browse(argv + ["-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and text == ""
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "x.png").exists()


def test_augmentation_report_changes_nothing_else(data):
    """report=True only adds the 'augmentation' entry: same arrays, same random stream."""
    cfg = load_config(DEFAULT, data + ["augment.half_body_prob=0.5"])
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    records = build_train_records(cfg.data)
    transform = TopDownTrainTransform(codec, **dict(cfg.augment))
    for i in range(len(records)):
        image = read_image(records[i].image_path)
        rng_a, rng_b = sample_rng(0, 0, i), sample_rng(0, 0, i)
        plain = transform(image, records[i], rng_a)
        reported = transform(image, records[i], rng_b, report=True)
        aug = reported.pop("augmentation")
        assert set(plain) == set(reported)
        assert all(np.array_equal(plain[k], reported[k]) for k in plain)
        assert rng_a.random() == rng_b.random()
        assert aug["flipped"] == plain["flipped"] and np.float32(aug["rotation"]) == plain["rotation"]
        assert 0.9 <= aug["scale_factor"] <= 1.1
    test = TopDownTestTransform(codec=codec, rotation=5.0, scale_factor=1.25)
    assert test(image, records[0], report=True)["augmentation"] == {
        "flipped": False, "half_body": False, "rotation": 5.0, "scale_factor": 1.25}


def test_preview_uses_the_moved_tiling_helpers():
    from gluonpose.demo import preview
    assert preview._tile is caption_tile and preview._grid is tile_grid
    image = np.zeros((10, 20, 3), np.uint8)
    assert caption_tile(image, "one line", 2.0).shape == (22 + 20, 40, 3)
    assert caption_tile(image, ["a", "b", "c"]).shape == (22 + 36 + 10, 20, 3)
    assert tile_grid([image, image[:5]], 4).shape == (10, 40, 3)
