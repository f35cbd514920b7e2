import os

import pytest

from gluonpose.config import DEFAULTS, load_config, read_yaml
from gluonpose.errors import ConfigError


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=5e-4", "codec.input_size=[288,384]", "model.name=hrnet_w32"])
    assert cfg.train.lr == 5e-4 and cfg.codec.input_size == (288, 384)
    assert cfg.model.name == "hrnet_w32"
    assert cfg.train.epochs == DEFAULTS["train"]["epochs"]
    with pytest.raises(TypeError):
        cfg.train["lr"] = 1.0


def test_base_inheritance_and_merge(tmp_path):
    (tmp_path / "_base_").mkdir()
    _write(tmp_path / "_base_" / "a.yaml", "train:\n  lr: 0.01\n  epochs: 3\nmodel:\n  name: hrnet_w8\n")
    _write(tmp_path / "_base_" / "b.yaml", "train:\n  epochs: 5\n")
    path = _write(tmp_path / "c.yaml", "_base_: [_base_/a.yaml, _base_/b.yaml]\ntrain:\n  seed: 7\n")
    cfg = load_config(path, ["train.seed=9"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.seed, cfg.model.name) == (0.01, 5, 9, "hrnet_w8")


def test_unknown_keys_name_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="train.lrr.*valid keys of train:.*lr_steps"):
        load_config(None, ["train.lrr=1"])
    path = _write(tmp_path / "bad.yaml", "trian:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="'trian'.*augment"):
        load_config(path)
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    path = _write(tmp_path / "broken.yaml", "train: [\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(path)


def test_free_form_codec_params():
    cfg = load_config(None, ["codec.params={radius: 3.5, udp: true}"])
    assert cfg.codec.params == {"radius": 3.5, "udp": True}


def test_every_shipped_config_loads(repo_root):
    folder = os.path.join(repo_root, "configs")
    paths = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
             if f.endswith(".yaml") and "_base_" not in d]
    assert paths, "configs/ holds no experiment yaml"
    from gluonpose.evaluation.tta import load_ensemble_config
    for path in paths:
        if os.sep + "ensemble" + os.sep in path:  # ensemble member lists + TTA grid, their own schema
            conf = load_ensemble_config(path)
            for member in conf["members"]:
                load_config(os.path.join(repo_root, member["config"]))
        else:
            load_config(path)


@pytest.mark.parametrize("override, key", [("train.val_errors=maybe", "train.val_errors"),
                                           ("data.on_bad=ignore", "data.on_bad")])
def test_choice_keys_are_checked_at_load_time(override, key):
    from gluonpose.config import load_config

    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + " must be one of"):
        load_config(None, [override])
    assert load_config(None, ["train.val_errors=stop"]).train.val_errors == "stop"


def test_augment_values_are_checked_at_load_time(tmp_path):
    cfg = load_config(None)
    assert (cfg.augment.sampling, cfg.augment.rot_factor, cfg.augment.scale_factor) == (
        "official", 15.0, 0.2)
    for override, message in [
            ("augment.sampling=offical", "augment.sampling must be one of official, uniform"),
            ("augment.rot_factor=-5", "augment.rot_factor must be a number in \\[0, 180\\]"),
            ("augment.rot_factor='15'", "augment.rot_factor must be a number"),
            ("augment.scale_factor=1.0", "augment.scale_factor must be a number in \\[0, 1\\)"),
            ("augment.rotation_prob=1.5", "augment.rotation_prob must be .* or null"),
            ("augment.flip_prob=true", "augment.flip_prob must be a number"),
            ("augment.half_body_min_joints=8.5", "half_body_min_joints must be an integer >= 0")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, [override])
    path = _write(tmp_path / "a.yaml", "augment:\n  sampling: uniform\n  rot_factor: 45\n"
                                       "  scale_factor: 0.35\n  rotation_prob: null\n")
    cfg = load_config(path)
    assert (cfg.augment.sampling, cfg.augment.rot_factor, cfg.augment.rotation_prob) == (
        "uniform", 45, None)
    path = _write(tmp_path / "b.yaml", "augment:\n  sampling: gaussian\n")
    with pytest.raises(ConfigError, match="augment.sampling"):
        load_config(path)
    with pytest.raises(ConfigError, match="valid keys of augment:.*rot_factor"):
        load_config(None, ["augment.rotation=30"])       # the old key names the new ones


def test_report_rows_decode_with_hough_and_draw_as_official(repo_root):
    folder = os.path.join(repo_root, "configs")
    paths = [os.path.join(folder, d, f) for d in ("mshrnet", "synthetic")
             for f in os.listdir(os.path.join(folder, d)) if f.endswith(".yaml")]
    assert len(paths) >= 7
    for path in paths:
        cfg = load_config(path)
        if os.path.basename(os.path.dirname(path)) == "synthetic":
            # the 10-minute demo is no report row: it names its own measured choices explicitly
            raw = read_yaml(path)
            assert "decoder" in raw["codec"]["params"] and "sampling" in raw["augment"], path
            continue
        assert cfg.codec.type == "heatmap_offset" and cfg.codec.params["decoder"] == "hough", path
        assert (cfg.augment.sampling, cfg.augment.rot_factor, cfg.augment.scale_factor) == (
            "official", 15.0, 0.2), path


def test_values_have_the_type_of_their_default(tmp_path):
    """Every value is checked at load time, from a file or an override, with the key in the message."""
    for override, match in (("train.lr=abc", r"train.lr must be a number > 0, got 'abc'"),
                            ("train.warmup_factor=abc", r"train.warmup_factor must be a number, got 'abc' \(str\)"),
                            ("train.epochs=1.5", "train.epochs must be an integer"),
                            ("test.flip=1", "test.flip must be a boolean"),
                            ("codec.input_size=[192]", r"codec.input_size must be a pair \[a, b\] of integers"),
                            ("codec.heatmap_size=[48, x]", "codec.heatmap_size must be a pair"),
                            ("data.train={type: coco}", "data.train must be a list of mappings"),
                            ("train=3", "train must be a mapping")):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [override])
    path = _write(tmp_path / "t.yaml", "test:\n  image_thr: 1e-2\n  oks_thr: 1\naugment:\n"
                  "  rotation_prob: null\nloss:\n  stage_weights: [1, 2]\ntrain:\n  gpus: 0\n  warmup_epochs: 0.5\n"
                  "loader:\ndata:\n  val: null\n")
    cfg = load_config(path)
    assert cfg.test.image_thr == 0.01 and type(cfg.test.oks_thr) is float and cfg.test.oks_thr == 1.0
    assert cfg.loss.stage_weights == (1.0, 2.0) and all(type(v) is float for v in cfg.loss.stage_weights)
    assert cfg.augment.rotation_prob is None and cfg.train.gpus == 0 and cfg.train.warmup_epochs == 0.5
    assert cfg.loader == DEFAULTS["loader"]          # an empty section keeps its defaults
    assert cfg.data.val == {}                         # null free-form mapping: the default (none)
    with pytest.raises(ConfigError, match="test.image_thr must be a number, got 'high'"):
        load_config(_write(tmp_path / "u.yaml", "test: {image_thr: high}\n"))


def test_types_table_names_real_keys():
    from gluonpose.config import TYPES
    for key in TYPES:
        section, name = key.split(".")
        assert name in DEFAULTS[section], key


def test_codec_params_are_checked_at_load_time(tmp_path):
    """A misspelt codec argument fails when the config is read, listing the codec's arguments."""
    path = _write(tmp_path / "c.yaml", "codec:\n  type: heatmap_offset\n  params: {radus: 3}\n")
    with pytest.raises(ConfigError, match="'codec.params.radus'.*valid keys of codec.params: .*radius"):
        load_config(path)
    with pytest.raises(ConfigError, match="'codec.params.stage_radii'.*stage_sigmas"):
        load_config(None, ["codec.type=gaussian", "model.head=heatmap", "codec.params={stage_radii: [5, 3]}"])
    with pytest.raises(ConfigError, match="codec.params.udp must be a boolean"):
        load_config(None, ["codec.params.udp=1"])
    with pytest.raises(ConfigError, match="codec.type must be one of gaussian, heatmap_offset, got 'msra'"):
        load_config(None, ["codec.type=msra"])
    with pytest.raises(ConfigError, match="codec.params.decoder must be one of argmax, hough for codec type "
                                          "heatmap_offset, got 'hought'"):
        load_config(None, ["codec.params={decoder: hought}"])
    cfg = load_config(None, ["codec.type=gaussian", "model.head=heatmap",
                             "codec.params={sigma: 3, stage_sigmas: [3, 2]}"])
    assert cfg.codec.params == {"sigma": 3.0, "stage_sigmas": (3, 2)}


def test_dump_config_is_atomic(tmp_path):
    """A dump that fails half-way leaves the previous file and no temporary file behind."""
    from gluonpose.config import Config, dump_config
    path = str(tmp_path / "config.yaml")
    cfg = load_config(None, ["train.seed=3"])
    dump_config(cfg, path)
    assert load_config(path) == cfg
    before = open(path).read()
    broken = Config(cfg)
    dict.__setitem__(broken, "train", {"seed": object()})     # not representable in YAML
    with pytest.raises(Exception):
        dump_config(broken, path)
    assert open(path).read() == before and os.listdir(str(tmp_path)) == ["config.yaml"]


def test_flip_fusion_checked_at_load_time():
    from gluonpose.config import load_config
    assert load_config(None, ["test.flip_fusion=votes"]).test.flip_fusion == "votes"
    with pytest.raises(ConfigError, match="maps, votes, coords"):
        load_config(None, ["test.flip_fusion=vote"])
    with pytest.raises(ConfigError, match="heatmap_offset"):
        load_config(None, ["test.flip_fusion=votes", "codec.type=gaussian"])
    with pytest.raises(ConfigError, match="decoder hough"):
        load_config(None, ["test.flip_fusion=votes", "codec.params={decoder: argmax}"])
    with pytest.raises(ConfigError, match="test.workers"):
        load_config(None, ["test.workers=-1"])
