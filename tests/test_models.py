"""Networks against the official HRNet: parameter counts, reference outputs, checkpoint loading.

The official reference tensors (tests/data/reference) come from the official PyTorch code run on seeded
random weights with random BatchNorm statistics; their values reach ~1e9 (pose) and ~1e8 (cls), where a
float32 ulp is 64-128. An absolute 1e-4 bound is therefore below float32 resolution for them; we compare
with a tolerance relative to the tensor's scale (max |ours - official| <= 1e-5 * max |official|), which
is float32 rounding over ~100 layers (measured: 1.2e-6 for the pose output), and additionally require the
heatmap argmax of every joint to agree exactly.
"""
import json
import os
import re

import mxnet as mx
import numpy as np
import pytest

import gluonpose
from gluonpose.models.hrnet import HRNetBackbone
from gluonpose.models.summary import count_macs, count_parameters
from gluonpose.errors import CheckpointError
from gluonpose.models.weights import load_official


def _scaled_err(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def test_parameter_counts_match_official():
    # counted from the parameter shapes: the big nets are never run
    assert count_parameters(gluonpose.get_model("hrnet_w32", initialize=False)) == 28536113
    assert count_parameters(gluonpose.get_model("hrnet_w48", initialize=False)) == 63595745


def test_macs_match_official_counts():
    # official get_model_summary: W32 7.65 GMAC at 256x192, W48 35.31 GMAC at 384x288
    assert abs(count_macs(gluonpose.get_model("hrnet_w32", initialize=False), (192, 256)) / 1e9
               - 7.645) < 0.005
    assert abs(count_macs(gluonpose.get_model("hrnet_w48", initialize=False), (288, 384)) / 1e9
               - 35.31) < 0.01


def test_w8_count_matches_reference(data_dir):
    with open(os.path.join(data_dir, "reference", "official_reference_w8.json")) as f:
        ref = json.load(f)
    assert count_parameters(gluonpose.get_model("hrnet_w8", initialize=False)) == ref["pose"]["params"]


def test_official_pose_output(data_dir):
    path = os.path.join(data_dir, "reference", "official_hrnet_pose_w8.npz")
    ref = np.load(path)
    net = gluonpose.get_model("hrnet_w8")
    report = load_official(net, path, kind="pose", allow_missing=False)
    assert len(report["loaded"]) == 1462 and not report["skipped"]
    out = net(mx.nd.array(ref["input"])).asnumpy()
    assert out.shape == ref["output"].shape == (2, 17, 32, 24)
    assert _scaled_err(out, ref["output"]) < 1e-5
    flat = lambda a: a.reshape(a.shape[0], a.shape[1], -1).argmax(-1)
    np.testing.assert_array_equal(flat(out), flat(ref["output"]))


def test_official_imagenet_backbone_stage4(data_dir):
    path = os.path.join(data_dir, "reference", "official_hrnet_cls_w8.npz")
    ref = np.load(path)
    net = HRNetBackbone(width=8, multi_scale_last=True)
    net.initialize()
    load_official(net, path, kind="imagenet", allow_missing=False)
    outs = net(mx.nd.array(ref["input"]))
    assert len(outs) == 4
    for i, y in enumerate(outs):
        assert y.shape == ref["stage4_out%d" % i].shape
        assert _scaled_err(y.asnumpy(), ref["stage4_out%d" % i]) < 1e-5


def test_imagenet_fills_every_stage(data_dir, tmp_path, num_stages=2):
    """The report: "the multiple stage weight is initialized using single stage weight from
    classification task". After scripts/convert_official.py --kind imagenet, EACH stage's backbone
    reproduces the official classification net's stage-4 outputs when fed the same input: stage 1 the
    image through its stem, later stages the official stem output through their own layer1 path (they
    have no stem: in the full net cross_conv feeds that path). Non-final stages end with the
    multi-scale module (all four branch outputs); the final stage's last module fuses to the
    high-resolution branch only, whose output sums all four branches."""
    from _helpers import load_script, run_main

    path = os.path.join(data_dir, "reference", "official_hrnet_cls_w8.npz")
    ref = np.load(path)
    keys = json.loads(str(ref["all_checkpoint_keys_json"]))
    arch = "mshrnet_w8_%dstage" % num_stages
    dst = str(tmp_path / "imagenet.params")
    code, text = run_main(load_script("convert_official").main,
                          ["--src", path, "--dst", dst, "--arch", arch, "--kind", "imagenet"])
    assert code == 0, text
    # the converter's report: no stage left at its random init, per stage
    lines = re.findall(r"^stage (\d+): \d+ of \d+ arrays loaded, (\d+) backbone arrays missing",
                       text, flags=re.M)
    assert [(int(s), int(m)) for s, m in lines] == [(s, 0) for s in range(num_stages)], text
    net = gluonpose.get_model(arch)
    net.load_parameters(dst)
    params = net._collect_params_with_prefix()
    # only heads and cross-stage adapters keep initial values (all listed: fewer than 10)
    missing = re.findall(r"^  (stages\.\d+\.[\w.]+)$", text, flags=re.M)
    assert missing and all(n.split(".")[2] in ("final_layer", "cross_conv") for n in missing)
    np.testing.assert_array_equal(params["stages.0.stage4.2.fuse_layers.3.0.1.0.weight"].data().asnumpy(),
                                  ref["param:stage4.2.fuse_layers.3.0.1.0.weight"])
    x = mx.nd.array(ref["input"])
    stem = net.stages[0].stem(mx.nd, x)
    for s, stage in enumerate(net.stages):
        ys, _ = stage.run(mx.nd, stem)                   # layer1 .. stage4, no cross-stage skips
        final = s == num_stages - 1
        assert len(ys) == (1 if final else 4)
        for i, y in enumerate(ys):
            assert _scaled_err(y.asnumpy(), ref["stage4_out%d" % i]) < 1e-5, (s, i)
    # a random stage would not: perturb one stage-2 weight of the last stage and it fails
    p = params["stages.%d.stage2.0.branches.0.0.conv1.weight" % (num_stages - 1)]
    p.set_data(p.data() * 1.5)
    ys, _ = net.stages[-1].run(mx.nd, stem)
    assert _scaled_err(ys[0].asnumpy(), ref["stage4_out0"]) > 1e-3
    # a full checkpoint's classification-only keys would be skipped by name
    assert any(k.startswith("incre_modules") for k in keys)


def test_classification_only_keys_are_skipped():
    net = gluonpose.get_model("hrnet_w8")
    state = {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}
    state = {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in state.items()}
    state["module.classifier.weight"] = np.zeros((1000, 2048), "float32")
    state["incre_modules.0.0.conv1.weight"] = np.zeros((32, 8, 1, 1), "float32")
    state["final_layer.0.weight"] = np.zeros((2048, 1024, 1, 1), "float32")
    state["bn1.num_batches_tracked"] = np.zeros((), "int64")
    del state["final_layer.weight"], state["final_layer.bias"]
    report = load_official(net, state, kind="imagenet")
    reasons = dict(report["skipped"])
    assert reasons["module.classifier.weight"] == "classification-only"
    assert reasons["incre_modules.0.0.conv1.weight"] == "classification-only"
    assert report["missing"] == ["final_layer.bias", "final_layer.weight"]


def test_wrong_checkpoint_is_refused(data_dir, tmp_path):
    path = os.path.join(data_dir, "reference", "official_hrnet_pose_w8.npz")
    net = gluonpose.get_model("hrnet_w16")
    with pytest.raises(CheckpointError, match=r"(?s)shape mismatch .*transition1\.0\.0\.weight"):
        load_official(net, path)
    bogus = str(tmp_path / "bogus.npz")
    np.savez(bogus, foo=np.zeros(3, "float32"))
    with pytest.raises(CheckpointError, match="no key of the checkpoint matches"):
        load_official(gluonpose.get_model("hrnet_w8"), bogus)
    with pytest.raises(CheckpointError, match="not found"):
        load_official(net, str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("stages", [2, 3])
def test_multistage_shapes(stages):
    net = gluonpose.get_model("mshrnet_w8_%dstage" % stages)
    outs = net(mx.nd.random.uniform(shape=(2, 3, 64, 64)))
    assert len(outs) == stages
    assert all(o.shape == (2, 51, 16, 16) for o in outs)


@pytest.mark.parametrize("stage_input,cross_stage", [("image", "identity"), ("features", "conv1x1")])
def test_multistage_variants_hybridize(stage_input, cross_stage):
    net = gluonpose.get_model("mshrnet_w8_2stage", stage_input=stage_input, cross_stage=cross_stage,
                              head="heatmap")
    x = mx.nd.random.uniform(shape=(1, 3, 64, 64))
    imperative = [o.asnumpy() for o in net(x)]
    net.hybridize(static_alloc=True, static_shape=True)
    hybrid = [o.asnumpy() for o in net(x)]
    assert all(o.shape == (1, 17, 16, 16) for o in hybrid)
    for a, b in zip(imperative, hybrid):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cross_stage_addition_reaches_second_stage():
    """Stage 2's output depends on stage 1's module outputs (not only on cross_conv)."""
    net = gluonpose.get_model("mshrnet_w8_2stage", stage_input="image")
    x = mx.nd.random.uniform(shape=(1, 3, 64, 64))
    before = net(x)[1].asnumpy()
    # perturb a stage-1 fuse layer that only feeds the skip into stage 2's first module
    p = net._collect_params_with_prefix()["stages.0.stage2.0.fuse_layers.1.0.0.0.weight"]
    p.set_data(p.data() + 0.05)
    after = net(x)[1].asnumpy()
    assert np.abs(after - before).max() > 0


def test_hybridized_equals_imperative_and_backward():
    net = gluonpose.get_model("mshrnet_w8_2stage")
    x = mx.nd.random.uniform(shape=(2, 3, 64, 64))
    ref = [o.asnumpy() for o in net(x)]
    net.hybridize(static_alloc=True, static_shape=True)
    for a, b in zip(ref, net(x)):
        np.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-6)
    with mx.autograd.record():
        loss = sum((o ** 2).mean() for o in net(x))
    loss.backward()
    frozen = {id(p) for p in net.unconsumed_parameters()}
    assert len(frozen) > 0
    grads = [p for p in net.collect_params().values() if p.grad_req != "null"]
    assert grads and all(id(p) not in frozen for p in grads)
    assert all(np.isfinite(p.grad().asnumpy()).all() for p in grads)
    assert any(np.abs(p.grad().asnumpy()).max() > 0 for p in grads)


def test_unknown_model_name_lists_valid_ones():
    with pytest.raises(ValueError, match="mshrnet_w48_2stage"):
        gluonpose.get_model("hrnet_large")


def test_build_model_initialises_every_stage_from_imagenet(data_dir):
    from gluonpose.models.builder import build_model
    path = os.path.join(data_dir, "reference", "official_hrnet_cls_w8.npz")
    ref = np.load(path)
    net = build_model("mshrnet_w8_2stage", pretrained=path, pretrained_kind="imagenet")
    params = net._collect_params_with_prefix()
    for s in (0, 1):
        np.testing.assert_array_equal(params["stages.%d.stage3.2.branches.1.0.bn1.gamma" % s].data().asnumpy(),
                                      ref["param:stage3.2.branches.1.0.bn1.weight"])
    with pytest.raises(ValueError, match="single-stage"):
        build_model("hrnet_w8", stage_input="image")
