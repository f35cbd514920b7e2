"""Deployment export: scripts/export.py symbol + params round trip (gluon.SymbolBlock.imports), the bf16
deploy graph's round trip, and ONNX parity in onnxruntime for width-8 nets with random (non-trivial) weights."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluonpose.deploy.export import mxnet_outputs
from gluonpose.models.builder import build_model

from _helpers import load_script, randomize, run_main, write_tiny_model

SIZE_WH = (96, 128)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A width-8 two-stage model: config, random weights file, the Gluon net and an input batch."""
    folder = tmp_path_factory.mktemp("export")
    cfg_path, weights, net = write_tiny_model(folder, "m", "mshrnet_w8_2stage", SIZE_WH, seed=0)
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE_WH[1], SIZE_WH[0])).astype(np.float32)
    return {"dir": folder, "cfg": cfg_path, "weights": weights, "net": net, "x": x,
            "ref": mxnet_outputs(net, x)}


def _export(argv):
    return run_main(load_script("export").main, argv)


def test_reference_outputs_are_not_trivial(model):
    assert len(model["ref"]) == 2
    for out in model["ref"]:
        assert out.shape == (2, 51, SIZE_WH[1] // 4, SIZE_WH[0] // 4)
        assert np.abs(out).max() > 0.5 and out.std() > 0.1


@pytest.mark.parametrize("stages", ["all", "last"])
def test_symbol_params_round_trip(repo_root, model, stages):
    prefix = str(model["dir"] / ("sym_" + stages))
    code, out = _export(["--config", model["cfg"], "--weights", model["weights"],
                                    "--out-prefix", prefix, "--stages", stages, "--batch", "2"])
    assert code == 0, out
    block = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params",
                                      ctx=mx.cpu())
    got = mxnet_outputs(block, model["x"])
    want = model["ref"] if stages == "all" else model["ref"][-1:]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
    # the exported file holds exactly the parameters the symbol uses (stage-1 head gone for 'last')
    saved = mx.nd.load(prefix + "-0000.params")
    names = {k.split(":", 1)[1] for k in saved}
    sym = mx.sym.load(prefix + "-symbol.json")
    assert names == set(sym.list_arguments()[1:]) | set(sym.list_auxiliary_states())
    if stages == "last":
        assert len(names) < len(list(model["net"].collect_params().keys()))


def test_deploy_bf16_export_loads_back(repo_root, model):
    """export --deploy bf16 writes a graph that gluon.SymbolBlock.imports runs on float32 input with the outputs
    of the in-memory bf16 deploy graph (the same operators: equal to 1e-5 of the output scale), within bf16
    rounding of the fp32 net (< 5% of the output scale; measured ~1%)."""
    from gluonpose.deploy import optimize
    if not optimize.bf16_available():
        pytest.skip("this MXNet build cannot run a bfloat16 convolution on CPU (probed on a 1x1 convolution "
                    "by optimize.bf16_available)")
    prefix = str(model["dir"] / "deploy_bf16")
    code, out = _export(["--config", model["cfg"], "--weights", model["weights"], "--out-prefix", prefix,
                         "--deploy", "bf16", "--batch", "2", "--check"])
    assert code == 0, out
    assert "check deploy bf16" in out
    with open(prefix + "-symbol.json") as f:
        nodes = json.load(f)["nodes"]
    casts = [n for n in nodes if n["op"] == "amp_cast" and nodes[n["inputs"][0][0]]["name"] == "data"]
    assert [c["attrs"]["dtype"] for c in casts] == ["bfloat16"]       # the input cast is in the file
    saved = mx.nd.load(prefix + "-0000.params")
    assert sum(v.dtype != np.float32 for v in saved.values()) > 100    # bf16 weights
    block = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params", ctx=mx.cpu())
    got = mxnet_outputs(block, model["x"])
    assert len(got) == 1 and got[0].dtype == np.float32
    memory = optimize.deploy_block(model["net"], model["x"].shape, precision="bf16")
    want = memory(mx.nd.array(model["x"])).asnumpy()
    fp32 = model["ref"][-1]
    scale = float(np.abs(fp32).max())
    assert got[0].shape == want.shape == fp32.shape
    assert float(np.abs(got[0] - want).max()) <= 1e-5 * scale
    assert float(np.abs(got[0] - fp32).max()) < 0.05 * scale
    assert float(np.abs(got[0] - fp32).max()) > 0                     # it is a bf16 graph, not fp32


def _onnx_session(path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed "
                              "(pip install -e '.[onnx]'); ONNX parity not checked")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def test_onnx_parity_two_stage(repo_root, model):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
    prefix = str(model["dir"] / "onnx_all")
    code, out = _export(["--config", model["cfg"], "--weights", model["weights"],
                                    "--out-prefix", prefix, "--onnx", "--batch", "2"])
    assert code == 0, out
    sess = _onnx_session(prefix + ".onnx")
    assert [i.name for i in sess.get_inputs()] == ["data"]        # weights are not inputs
    assert [o.name for o in sess.get_outputs()] == ["output_stage1", "output_stage2"]
    got = sess.run(None, {"data": model["x"]})
    for g, w in zip(got, model["ref"]):
        assert g.shape == w.shape
        assert float(np.abs(g - w).max()) < 1e-4


def test_onnx_parity_single_stage_dynamic_batch(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
    from gluonpose.deploy.export import export_onnx, export_symbol
    from gluonpose.models import get_model

    net = get_model("hrnet_w8")
    randomize(net, 2, (1, 3, 64, 64))
    exported = export_symbol(net, str(tmp_path / "h"), (64, 64), batch=1)
    path = export_onnx(exported, str(tmp_path / "h.onnx"), dynamic_batch=True)
    x = np.random.default_rng(3).standard_normal((3, 3, 64, 64)).astype(np.float32)
    want = mxnet_outputs(net, x)[0]
    assert np.abs(want).max() > 0.5
    sess = _onnx_session(path)
    assert [o.name for o in sess.get_outputs()] == ["output"]
    got = sess.run(None, {"data": x})[0]                          # batch 3 through a batch-1 export
    assert got.shape == want.shape == (3, 17, 16, 16)
    assert float(np.abs(got - want).max()) < 1e-4


def test_export_bad_weights_is_a_clear_error(repo_root, model, tmp_path, capsys):
    bad = tmp_path / "other.params"
    other = build_model(name="hrnet_w8", head="heatmap")  # initialised by build_model (once: no warnings)
    other(mx.nd.zeros((1, 3, 64, 64)))
    other.save_parameters(str(bad))
    main = load_script("export").main
    code = main(["--config", model["cfg"], "--weights", str(bad), "--out-prefix",
                 str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: weights %s do not fit model mshrnet_w8_2stage" % bad), err
    assert "not in the file, first stages.0." in err and len(err.strip().splitlines()) == 1
