"""One error path for every command: a user's mistake is one ``error: ...`` line naming the file / key /
value and exit status 2; ``--gpus`` is checked before any work; ``key=value`` overrides go anywhere;
a real bug keeps its traceback. Also: the console entry points of setup.py are the scripts' ``main``.

Each case runs a script's ``main(argv)`` in-process (``tests/_helpers.load_script``) on width-8 nets.
"""
import ast
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from gluonpose.models.builder import build_model

from _helpers import ROOT, load_script, write_tiny_model

SIZE_WH = (32, 32)
#: every command: script name -> console command (setup.py) -> gluonpose.tools module
COMMANDS = {"train_mshrnet": "train", "test_mshrnet": "test", "ensemble_eval": "ensemble", "demo": "demo",
            "export": "export", "convert_official": "convert", "launch_dist": "launch",
            "benchmark": "benchmark", "analyze_errors": "analyze", "browse_samples": "browse",
            "plot_curves": "curves"}


#: each command sets logging up on the stderr of its own test (conftest.fresh_logging)
pytestmark = pytest.mark.usefixtures("fresh_logging")


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir):
    """A tiny hrnet_w8 heatmap+offset model (config, weights) and the bad inputs of the cases."""
    folder = tmp_path_factory.mktemp("cli")
    cfg, weights, _ = write_tiny_model(folder, "m", "hrnet_w8", SIZE_WH)
    other = build_model(name="hrnet_w8", head="heatmap")  # same backbone, 17 instead of 51 head channels
    other_path = str(folder / "heatmap_head.params")
    other.save_parameters(other_path)
    whole = open(weights, "rb").read()
    truncated = str(folder / "truncated.params")
    open(truncated, "wb").write(whole[:len(whole) // 2])
    bad_json = str(folder / "bad.json")
    open(bad_json, "w").write('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [')
    coco = os.path.join(data_dir, "samples", "coco")
    train_yaml = open(cfg).read() + ("data: {train: [{type: coco, ann_file: %s, img_prefix: %s}]}\n"
                                     "loader: {batch_size_per_device: 2, num_workers: 0}\n")
    train_cfg, good_train_cfg = str(folder / "train.yaml"), str(folder / "good_train.yaml")
    open(train_cfg, "w").write(train_yaml % (bad_json, coco))        # a malformed annotation json
    open(good_train_cfg, "w").write(train_yaml % (os.path.join(coco, "test_coco.json"), coco))
    npz = str(folder / "truncated.npz")
    np.savez(str(folder / "full.npz"), **{"final_layer.weight": np.ones((17, 8, 1, 1), np.float32)})
    full_npz = open(str(folder / "full.npz"), "rb").read()
    open(npz, "wb").write(full_npz[:len(full_npz) // 2])
    return {"dir": folder, "cfg": cfg, "weights": weights, "other": other_path, "truncated": truncated,
            "bad_json": bad_json, "train_cfg": train_cfg, "good_train_cfg": good_train_cfg, "npz": npz,
            "gt": os.path.join(coco, "test_coco.json"), "image": os.path.join(coco, "000000196141.jpg"),
            "boxes": os.path.join(coco, "test_coco_det_AP_H_56.json"),
            "missing": str(folder / "missing.params")}


def _error(capsys, script, argv):
    """Run ``script``'s main; check exit status 2 and exactly one ``error:`` line (the last, no
    traceback); return that line."""
    code = load_script(script).main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert [line for line in lines if "error: " in line] == lines[-1:], err
    assert lines[-1].startswith("error: "), err
    return lines[-1]


def _argv(files, script, **over):
    """A complete command line of ``script`` (every required flag), with ``over`` replacing flags."""
    out = str(files["dir"] / "out.json")
    base = {
        "train_mshrnet": {"--config": files["good_train_cfg"], "--work-dir": str(files["dir"] / "work"),
                          "--gpus": "", "--no-progress": None},
        "test_mshrnet": {"--config": files["cfg"], "--weights": files["weights"], "--gt-json": files["gt"],
                         "--use-gt-boxes": None, "--out": out, "--no-progress": None},
        "ensemble_eval": {"--models": "%s:%s" % (files["cfg"], files["weights"]), "--gt-json": files["gt"],
                          "--use-gt-boxes": None, "--out": out, "--no-progress": None},
        "demo": {"--config": files["cfg"], "--weights": files["weights"], "--image": files["image"],
                 "--boxes": files["boxes"], "--out": str(files["dir"] / "vis.jpg")},
        "export": {"--config": files["cfg"], "--weights": files["weights"],
                   "--out-prefix": str(files["dir"] / "exported")},
        "convert_official": {"--src": files["npz"], "--dst": str(files["dir"] / "conv.params"),
                             "--arch": "hrnet_w8"},
        "benchmark": {"--model": "hrnet_w8", "--summary": None},
    }[script]
    base.update(over)
    argv = []
    for key, value in base.items():
        if value is False:
            continue
        argv += [key] if value is None else [key, value]
    return argv


# ---------------------------------------------------------------------------------------------- devices

GPU_SCRIPTS = ["train_mshrnet", "test_mshrnet", "ensemble_eval", "demo", "benchmark"]


@pytest.mark.parametrize("script", GPU_SCRIPTS)
def test_gpus_are_checked_before_any_work(files, capsys, script):
    """A GPU this machine / MXNet build lacks is the error, even when the data, the weights and the
    boxes are all bad too (they would fail later, after the data set or the network is built)."""
    gpu = str(mx.context.num_gpus() + 7)
    over = {"--gpus": gpu}
    if script == "train_mshrnet":
        over["--config"] = files["train_cfg"]          # its annotation json is malformed
    if script in ("test_mshrnet", "ensemble_eval"):
        over["--gt-json"] = files["bad_json"]
    if script in ("test_mshrnet", "demo"):
        over["--weights"] = files["missing"]
    if script == "ensemble_eval":
        over["--models"] = "%s:%s" % (files["cfg"], files["missing"])
    line = _error(capsys, script, _argv(files, script, **over))
    assert "--gpus '%s'" % gpu in line and "GPU" in line, line
    if script == "train_mshrnet":
        assert not (files["dir"] / "work").exists(), "the run started before the device check"


# ---------------------------------------------------------------------------------------------- config

CONFIG_SCRIPTS = ["train_mshrnet", "test_mshrnet", "demo", "export"]


@pytest.mark.parametrize("script", CONFIG_SCRIPTS)
def test_unknown_config_key_after_the_flags(files, capsys, script):
    """``key=value`` after the flags is parsed as an override (not 'unrecognized arguments') and an
    unknown key is one line naming it and the valid keys."""
    line = _error(capsys, script, _argv(files, script) + ["train.bogus_key=3"])
    assert "unknown config key 'train.bogus_key'" in line and "lr" in line, line


@pytest.mark.parametrize("script", CONFIG_SCRIPTS)
def test_missing_config_file(files, capsys, script):
    missing = str(files["dir"] / "no_such.yaml")
    line = _error(capsys, script, _argv(files, script, **{"--config": missing}))
    assert "config file not found: %s" % missing in line, line


def test_ensemble_config_errors(files, capsys):
    bad = files["dir"] / "ens.yaml"
    bad.write_text("members: []\ntta: {rotations: [0], scalez: [1.0]}\n")
    line = _error(capsys, "ensemble_eval",
                  _argv(files, "ensemble_eval", **{"--models": False, "--config": str(bad)}))
    assert str(bad) in line and "scalez" in line, line
    missing = str(files["dir"] / "no_such.yaml")
    line = _error(capsys, "ensemble_eval", _argv(files, "ensemble_eval",
                                                 **{"--models": "%s:%s" % (missing, files["weights"])}))
    assert "config file not found: %s" % missing in line, line


def test_unknown_names(files, capsys):
    line = _error(capsys, "convert_official", _argv(files, "convert_official", **{"--arch": "hrnet_x9"}))
    assert "unknown model 'hrnet_x9'" in line, line
    line = _error(capsys, "benchmark", _argv(files, "benchmark", **{"--model": "hrnet_x9"}))
    assert "unknown model 'hrnet_x9'" in line, line
    line = _error(capsys, "export", _argv(files, "export") + ["codec.type=gaussian_x"])
    assert "codec.type must be one of gaussian, heatmap_offset, got 'gaussian_x'" in line, line


@pytest.mark.parametrize("override,message", [
    ("loss.offset_loss=l3", "loss.offset_loss must be one of l2, smooth_l1, got 'l3'"),
    ("loss.heatmap_loss=bce", "loss.heatmap_loss=bce needs codec.params.heatmap_activation=sigmoid"),
    ("codec.params={decoder: hough_voting}", "codec.params.decoder must be one of argmax, hough"),
    ("augment.sampling=offical", "augment.sampling must be one of official, uniform, got 'offical'"),
    ("test.flip_fusion=vote", "test.flip_fusion must be one of maps, votes, coords, null"),
    ("train.val_errors=ignore", "train.val_errors must be one of continue, stop"),
    ("model.name=mshrnet_w8_x", "unknown model 'mshrnet_w8_x'"),
])
def test_a_mistyped_choice_is_named_before_any_data_is_read(tmp_path, capsys, override, message):
    """The training config points at a data folder that does not exist: a mistyped choice is
    still the error (one line, exit 2), found when the config is loaded, before any data."""
    missing = str(tmp_path / "no_such_folder")
    argv = ["data.train=[{type: coco, ann_file: %s/ann.json, img_prefix: %s}]" % (missing, missing),
            "train.work_dir=%s" % (tmp_path / "work"), override]
    line = _error(capsys, "train_mshrnet", argv)
    assert message in line and "no_such_folder" not in line, line
    assert not os.path.exists(str(tmp_path / "work" / "log.txt"))


# ---------------------------------------------------------------------------------------------- data

def test_malformed_annotation_json(files, capsys):
    bad = files["bad_json"]
    line = _error(capsys, "train_mshrnet",
                  _argv(files, "train_mshrnet", **{"--config": files["train_cfg"]}))
    assert "not valid JSON: %s" % bad in line, line
    for script in ("test_mshrnet", "ensemble_eval"):
        line = _error(capsys, script, _argv(files, script, **{"--gt-json": bad}))
        assert bad in line, (script, line)
    line = _error(capsys, "demo", _argv(files, "demo", **{"--boxes": bad}))
    assert "not valid JSON: %s" % bad in line, line


def test_missing_input_files(files, capsys):
    missing = files["missing"]
    for script in ("test_mshrnet", "demo", "export"):
        line = _error(capsys, script, _argv(files, script, **{"--weights": missing}))
        assert "weights file not found: %s" % missing in line, (script, line)
    line = _error(capsys, "demo", _argv(files, "demo", **{"--image": str(files["dir"] / "nope.jpg")}))
    assert "input not found: %s" % (files["dir"] / "nope.jpg") in line, line
    line = _error(capsys, "convert_official", _argv(files, "convert_official", **{"--src": missing}))
    assert missing in line, line


# ---------------------------------------------------------------------------------------------- weights

WEIGHTS_SCRIPTS = ["test_mshrnet", "ensemble_eval", "demo", "export"]


def _weights_argv(files, script, weights):
    """The arguments of ``script`` with ``weights`` as the model's weights (ensemble_eval: its one member)."""
    if script == "ensemble_eval":
        return _argv(files, script, **{"--models": "%s:%s" % (files["cfg"], weights)})
    return _argv(files, script, **{"--weights": weights})


@pytest.mark.parametrize("script", WEIGHTS_SCRIPTS)
def test_weights_that_do_not_fit_name_the_parameter_and_both_shapes(files, capsys, script):
    line = _error(capsys, script, _weights_argv(files, script, files["other"]))
    # hrnet_w8: the heatmap head has 17 channels, heatmap+offset 3 x 17 = 51 (both 8 input channels)
    assert files["other"] in line and "model hrnet_w8 (head heatmap_offset, 17 joints)" in line, line
    assert "parameter final_layer.weight has shape (17, 8, 1, 1) in the file but (51, 8, 1, 1) in the " \
           "network" in line, line


@pytest.mark.parametrize("script", WEIGHTS_SCRIPTS)
def test_truncated_weights_name_the_file(files, capsys, script):
    line = _error(capsys, script, _weights_argv(files, script, files["truncated"]))
    assert "weights file %s cannot be read (truncated" % files["truncated"] in line, line


def test_model_pretrained_that_does_not_fit(files, capsys):
    """``model.pretrained`` (training): a .params of another head, a truncated .params or .npz."""
    train = _argv(files, "train_mshrnet")
    line = _error(capsys, "train_mshrnet", train + ["model.pretrained=%s" % files["other"]])
    assert "model.pretrained %s do not fit" % files["other"] in line, line
    assert "final_layer.weight has shape (17, 8, 1, 1) in the file but (51, 8, 1, 1)" in line, line
    line = _error(capsys, "train_mshrnet", train + ["model.pretrained=%s" % files["truncated"]])
    assert "model.pretrained file %s cannot be read (truncated" % files["truncated"] in line, line
    line = _error(capsys, "train_mshrnet", train + ["model.pretrained=%s" % files["npz"]])
    assert "checkpoint %s cannot be read (truncated" % files["npz"] in line, line
    line = _error(capsys, "convert_official", _argv(files, "convert_official"))
    assert "checkpoint %s cannot be read (truncated" % files["npz"] in line, line


def test_missing_optional_package(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # 'import onnx' raises ImportError
    line = _error(capsys, "export", _argv(files, "export", **{"--onnx": None}))
    assert "ONNX export needs the 'onnx' package" in line and ".[onnx]" in line, line


def test_launcher_missing_hostfile(files, capsys):
    missing = str(files["dir"] / "hosts")
    line = _error(capsys, "launch_dist", ["-n", "1", "-H", missing, "--", "true"])
    assert "hostfile not found: %s" % missing in line, line


# ---------------------------------------------------------------------------------------------- parsing

def test_overrides_anywhere_on_the_command_line():
    from gluonpose.tools import test, train
    args = train.parse_args(["train.lr=1e-4", "--config", "c.yaml", "loader.num_workers=0", "--gpus", "",
                             "train.epochs=2", "--no-progress", "train.seed=5"])
    assert args.overrides == ["train.lr=1e-4", "loader.num_workers=0", "train.epochs=2", "train.seed=5"]
    assert (args.config, args.gpus, args.no_progress) == ("c.yaml", "", True)
    args = test.parse_args(["--config", "c", "test.oks_thr=0.5", "--weights", "w", "--out", "o",
                            "--no-flip", "test.flip=false"])
    assert args.overrides == ["test.oks_thr=0.5", "test.flip=false"] and args.flip is False


def test_resume_takes_an_optional_path():
    from gluonpose.tools.train import parse_args as parse
    assert parse([]).resume is False
    assert parse(["--resume"]).resume is True
    assert parse(["--resume", "work/epoch_0003.json", "--gpus", ""]).resume == "work/epoch_0003.json"
    args = parse(["--resume", "train.lr=1e-4", "--no-progress"])   # a bare --resume, then an override
    assert args.resume is True and args.overrides == ["train.lr=1e-4"]


def test_resume_path_errors(files, capsys):
    missing = str(files["dir"] / "nowhere" / "epoch_0001.json")
    line = _error(capsys, "train_mshrnet", _argv(files, "train_mshrnet", **{"--resume": missing}))
    assert "checkpoint not found: %s" % missing in line, line
    empty = files["dir"] / "empty_work"
    empty.mkdir()
    line = _error(capsys, "train_mshrnet", _argv(files, "train_mshrnet", **{"--resume": str(empty)}))
    assert "%s holds no checkpoint" % empty in line, line


# ---------------------------------------------------------------------------------------------- bugs

def test_a_bug_keeps_its_traceback(files, monkeypatch):
    """Only user errors are caught: a TypeError inside library code propagates (in-process) and the
    script run shows the traceback with exit status 1, not an 'error:' line."""
    from gluonpose.models import builder

    def broken(*args, **kwargs):
        return None + 1

    monkeypatch.setattr(builder, "build_net_from_config", broken)
    with pytest.raises(TypeError):
        load_script("test_mshrnet").main(_argv(files, "test_mshrnet"))
    code = ("import sys; from gluonpose.models import builder\n"
            "def broken(*a, **k):\n    return None + 1\n"
            "builder.build_net_from_config = broken\n"
            "from gluonpose.tools.export import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code] + _argv(files, "export"), capture_output=True,
                          text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr and "TypeError" in proc.stderr
    assert "\nerror: " not in "\n" + proc.stderr


def test_script_run_prints_one_error_line(files):
    """The same path when run as ``python scripts/x.py`` (what a user types)."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export.py")]
                          + _argv(files, "export", **{"--weights": files["other"]}),
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: weights %s do not fit" % files["other"])
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- packaging

def _setup_kwargs():
    """The keyword arguments setup.py passes to setuptools.setup (read with ast, nothing installed)."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    call = next(n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                and getattr(n.value.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name):
            out[kw.arg] = values.get(kw.value.id)
        elif isinstance(kw.value, ast.Dict):
            value = lambda v: values[v.id] if isinstance(v, ast.Name) else ast.literal_eval(v)  # noqa: E731
            out[kw.arg] = {ast.literal_eval(k): value(v) for k, v in zip(kw.value.keys, kw.value.values)}
        else:
            try:
                out[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                pass
    return out


def test_console_entry_points_are_the_scripts_main():
    import importlib
    entries = _setup_kwargs()["entry_points"]["console_scripts"]
    targets = dict(e.replace(" ", "").split("=") for e in entries)
    assert set(targets) == {"gluonpose-" + c for c in COMMANDS.values()}
    for script, command in COMMANDS.items():
        module, func = targets["gluonpose-" + command].split(":")
        main = getattr(importlib.import_module(module), func)
        assert load_script(script).main is main
        with pytest.raises(SystemExit) as exit_info:  # --help works through the entry point
            main(["--help"])
        assert exit_info.value.code == 0


def test_no_script_edits_sys_path():
    folders = [os.path.join(ROOT, "scripts"), os.path.join(ROOT, "gluonpose", "tools")]
    for folder in folders:
        for name in os.listdir(folder):
            if name.endswith(".py"):
                assert "sys.path" not in open(os.path.join(folder, name), encoding="utf-8").read(), name


def test_setup_requirements():
    kw = _setup_kwargs()
    reqs = kw["install_requires"]
    assert [r for r in reqs if r.startswith("opencv")] == ["opencv-python-headless<4.11"]
    assert not [r for r in reqs if r.startswith("gluoncv")]
    assert [r for r in kw["extras_require"]["detector"] if r.startswith("gluoncv")]
    # argparse.BooleanOptionalAction (every evaluation CLI) exists from Python 3.9 on
    assert kw["python_requires"].startswith(">=3.9")
    readme = open(os.path.join(ROOT, "docs", "getting-started.md"), encoding="utf-8").read()
    assert "Python 3.9-3.11" in readme and "Python 3.8" not in readme
    assert '.[detector]' in readme
    for command in COMMANDS.values():
        assert "gluonpose-" + command in readme, command


def test_loader_side_by_side_errors(tmp_path, capsys):
    """``benchmark.py --loader --side-by-side``: a missing official repository, Python or COCO folder is one error line."""
    missing = str(tmp_path / "no_repo")
    line = _error(capsys, "benchmark", ["--loader", "--side-by-side", "--official-repo", missing,
                                        "--official-python", sys.executable])
    assert "--official-repo" in line and missing in line, line
    line = _error(capsys, "benchmark", ["--loader", "--side-by-side", "--official-repo", str(tmp_path),
                                        "--official-python", str(tmp_path / "python")])
    assert "--official-python" in line, line
    line = _error(capsys, "benchmark", ["--loader", "--side-by-side", "--official-repo", str(tmp_path),
                                        "--official-python", sys.executable, "--coco-dir", str(tmp_path)])
    assert "--coco-dir" in line and "test_coco.json" in line, line
