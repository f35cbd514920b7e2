"""Deploy graphs: BatchNorm folding, oneDNN fusion, bf16 and int8, against the unfolded training net."""
import json

import mxnet as mx
import numpy as np
import pytest

from gluonpose.deploy import optimize
from gluonpose.models import get_model

from _helpers import randomize

SHAPE = (2, 3, 128, 96)


@pytest.fixture(scope="module")
def net_and_input():
    net = get_model("mshrnet_w8_2stage")
    randomize(net, 3, SHAPE)
    x = mx.nd.array(np.random.default_rng(0).uniform(-2, 2, SHAPE))
    return net, x, net(x)


def _rel(a, b):
    a, b = a.asnumpy(), b.asnumpy()
    return np.abs(a - b).max() / np.abs(b).max()


def test_fold_removes_every_batchnorm_and_keeps_outputs(net_and_input):
    net, x, ref = net_and_input
    sym, args, aux = optimize.trace(net, SHAPE, stages="all")
    n_bn = sum(n["op"] == "BatchNorm" for n in json.loads(sym.tojson())["nodes"])
    folded, fargs, faux, n = optimize.fold_batchnorm(sym, args, aux)
    ops = [node["op"] for node in json.loads(folded.tojson())["nodes"]]
    assert n == n_bn > 100 and "BatchNorm" not in ops and not faux
    out = optimize.bind(folded, fargs, faux)(x)
    assert len(out) == len(ref) == 2
    for o, r in zip(out, ref):
        assert _rel(o, r) < 1e-4


def test_fold_keeps_batchnorm_after_shared_conv():
    """A BatchNorm whose convolution output is used elsewhere too must not be folded."""
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), no_bias=True, name="c")
    bn = mx.sym.BatchNorm(conv, fix_gamma=False, eps=1e-5, name="bn")
    sym = mx.sym.Group([bn, conv])
    rng = np.random.default_rng(1)
    args = {"c_weight": mx.nd.array(rng.standard_normal((4, 3, 3, 3))), "bn_gamma": mx.nd.array(rng.uniform(1, 2, 4)),
            "bn_beta": mx.nd.array(rng.standard_normal(4))}
    aux = {"bn_moving_mean": mx.nd.array(rng.standard_normal(4)), "bn_moving_var": mx.nd.array(rng.uniform(1, 2, 4))}
    _, _, _, n = optimize.fold_batchnorm(sym, args, aux)
    assert n == 0


def test_fold_matches_hand_computed_formula():
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, num_filter=2, kernel=(1, 1), no_bias=False, name="c")
    sym = mx.sym.BatchNorm(conv, fix_gamma=False, eps=1e-5, name="bn")
    w = np.array([[[[2.0]]], [[[-1.0]]]]); b = np.array([0.5, 1.0])
    gamma, beta, mean, var = np.array([3.0, 0.5]), np.array([1.0, -1.0]), np.array([0.25, 2.0]), np.array([4.0, 1.0])
    args = {"c_weight": mx.nd.array(w), "c_bias": mx.nd.array(b), "bn_gamma": mx.nd.array(gamma),
            "bn_beta": mx.nd.array(beta)}
    aux = {"bn_moving_mean": mx.nd.array(mean), "bn_moving_var": mx.nd.array(var)}
    _, fargs, _, n = optimize.fold_batchnorm(sym, args, aux)
    k = gamma / np.sqrt(var + 1e-5)
    assert n == 1
    np.testing.assert_allclose(fargs["c_weight"].asnumpy().ravel(), w.ravel() * k, rtol=1e-6)
    np.testing.assert_allclose(fargs["c_bias"].asnumpy(), (b - mean) * k + beta, rtol=1e-6)


@pytest.mark.skipif(not optimize.onednn_available(), reason="MXNet build without oneDNN")
def test_fused_graph_has_onednn_operators_and_same_outputs(net_and_input):
    net, x, ref = net_and_input
    sym, args, aux = optimize.deploy_symbol(net, SHAPE)
    ops = [n["op"] for n in json.loads(sym.tojson())["nodes"]]
    assert sum(op.startswith("_sg_mkldnn_conv") for op in ops) > 100
    # every ReLU is an Activation that oneDNN can fuse: the `relu` operator is neither fused nor run by oneDNN
    # (it was 28 % of the W32 deploy time); the ReLUs left stand-alone are the ones after the fuse layers' sums
    traced = [n["op"] for n in json.loads(optimize.trace(net, SHAPE)[0].tojson())["nodes"]]
    assert "relu" not in traced and "relu" not in ops
    assert ops.count("Activation") < traced.count("Activation") // 4
    out = optimize.bind(sym, args, aux)(x)
    assert _rel(out, ref[-1]) < 1e-4
    # a batch size other than the traced one
    assert _rel(optimize.bind(sym, args, aux)(x[:1]), ref[-1][:1]) < 1e-4


def test_bf16_graph_is_close(net_and_input):
    net, x, ref = net_and_input
    out = optimize.deploy_block(net, SHAPE, precision="bf16")(x)
    assert out.dtype == np.float32 and _rel(out, ref[-1]) < 0.05


@pytest.mark.skipif(not optimize.bf16_available(),
                    reason="this MXNet build cannot run a bfloat16 convolution on CPU (probed by bf16_available)")
def test_bf16_graph_keeps_its_input_cast_when_saved(tmp_path):
    """MXNet's default serialisation (Symbol.tojson / save, remove_amp_cast=True) drops AMP's input cast, so the
    graph no longer type-checks with a float32 input; save_deploy keeps it and the file loads back."""
    from gluonpose.deploy.export import load_exported
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name="c")
    sym = mx.sym.Activation(mx.sym.Convolution(mx.sym.relu(conv), num_filter=2, kernel=(1, 1), name="d"),
                            act_type="relu")
    rng = np.random.default_rng(2)
    args = {"c_weight": mx.nd.array(rng.standard_normal((4, 3, 3, 3))), "c_bias": mx.nd.array(rng.standard_normal(4)),
            "d_weight": mx.nd.array(rng.standard_normal((2, 4, 1, 1))), "d_bias": mx.nd.array(rng.standard_normal(2))}
    bsym, bargs, baux = optimize.convert_bf16(sym, dict(args), {})
    ops = [n["op"] for n in json.loads(bsym.tojson(remove_amp_cast=False))["nodes"]]
    assert "relu" not in ops and ops.count("Activation") == 2   # relu runs as Activation (oneDNN in bf16)
    with pytest.raises(mx.base.MXNetError, match="bfloat16"):
        mx.sym.load_json(bsym.tojson()).infer_type(data=np.float32)
    x = mx.nd.array(rng.uniform(-2, 2, (2, 3, 8, 8)))
    want = optimize.bind(bsym, bargs, baux)(x)
    optimize.save_deploy(bsym, bargs, baux, str(tmp_path / "b"))
    got = load_exported(str(tmp_path / "b"))(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())
    assert 0 < _rel(got, optimize.bind(sym, args, {})(x)) < 0.02
    # a graph that would load broken is refused before anything is written
    with pytest.raises(RuntimeError, match="type-check"):
        optimize.save_deploy(mx.sym.load_json(bsym.tojson()), bargs, baux, str(tmp_path / "broken"))
    assert not list(tmp_path.glob("broken*"))


def test_unknown_precision_and_int8_without_crops_are_user_errors(net_and_input):
    net, _, _ = net_and_input
    with pytest.raises(optimize.DeployError, match="precision"):
        optimize.deploy_block(net, SHAPE, precision="fp8")
    with pytest.raises(optimize.DeployError, match="calibration"):
        optimize.deploy_block(net, SHAPE, precision="int8")
