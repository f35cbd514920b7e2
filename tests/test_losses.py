"""Losses and the learning-rate schedule against formulas written out here in numpy: the official
JointsMSELoss / JointsOHKMMSELoss, offsets supervised only inside the target disk, the logistic loss,
target weights that silence a joint, per-stage weights and targets; the report's step schedule."""
import mxnet as mx
import numpy as np
import pytest

from gluonpose.codecs import layout
from gluonpose.models.losses import PoseLoss
from gluonpose.engine.schedule import MultiStepSchedule

K, H, W = 4, 6, 5


@pytest.fixture
def batch():
    """Heatmap+offset outputs/targets for N=3 samples; disks of radius 1 around random centres."""
    rng = np.random.default_rng(0)
    n = 3
    target = np.zeros((n, 3 * K, H, W), np.float32)
    for i in range(n):
        for k in range(K):
            cy, cx = rng.integers(1, H - 1), rng.integers(1, W - 1)
            target[i, k, cy - 1:cy + 2, cx] = 1.0
            target[i, k, cy, cx - 1:cx + 2] = 1.0
    disk = target[:, :K] > 0
    target[:, K:2 * K] = np.where(disk, rng.uniform(-1, 1, disk.shape), 0)
    target[:, 2 * K:] = np.where(disk, rng.uniform(-1, 1, disk.shape), 0)
    output = rng.normal(0, 0.5, target.shape).astype(np.float32)
    weight = np.ones((n, K), np.float32)
    weight[1, 2] = 0.0
    return output, target, weight


def _np_heatmap_mse(out, tgt, w):
    """Official JointsMSELoss per sample: mean over joints of 0.5 * mean over pixels of (w*(p-g))^2."""
    d = (out[:, :K] - tgt[:, :K]) * w[:, :, None, None]
    return (0.5 * d ** 2).mean(axis=(2, 3))          # (N, K)


def _np_offset(out, tgt, w, kind="l2"):
    mask = (tgt[:, :K] > 0) * w[:, :, None, None]
    terms = []
    for a in (slice(K, 2 * K), slice(2 * K, 3 * K)):
        d = (out[:, a] - tgt[:, a]) * mask
        if kind == "l2":
            e = 0.5 * d ** 2
        else:
            e = np.where(np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5)
        terms.append(e.mean(axis=(2, 3)))
    return terms[0] + terms[1]                        # (N, K)


def _run(loss, outputs, target, weight):
    outs = [mx.nd.array(o) for o in outputs]
    total, terms = loss(outs, mx.nd.array(target), mx.nd.array(weight))
    return total.asnumpy(), {k: float(v.asscalar()) for k, v in terms.items()}


def test_heatmap_offset_loss_matches_the_formulas(batch):
    out, tgt, w = batch
    loss = PoseLoss(layout.HEATMAP_OFFSET, K, heatmap_weight=2.0, offset_weight=0.5)
    total, terms = _run(loss, [out], tgt[:, None], w[:, None])
    hm = _np_heatmap_mse(out, tgt, w).mean(axis=1)
    off = _np_offset(out, tgt, w).mean(axis=1)
    np.testing.assert_allclose(total, 2.0 * hm + 0.5 * off, rtol=1e-5)
    assert terms["heatmap"] == pytest.approx(hm.mean(), rel=1e-5)
    assert terms["offset"] == pytest.approx(off.mean(), rel=1e-5)
    # the batch mean is the official JointsMSELoss (mean over joints of 0.5 * MSE over batch, pixels)
    official = np.mean([0.5 * np.mean(((out[:, k] - tgt[:, k]) * w[:, k, None, None]) ** 2)
                        for k in range(K)])
    assert hm.mean() == pytest.approx(official, rel=1e-5)


def test_smooth_l1_offsets(batch):
    out, tgt, w = batch
    out = out * 4.0                                   # errors beyond 1 reach the linear part
    loss = PoseLoss(layout.HEATMAP_OFFSET, K, offset_loss="smooth_l1")
    _, terms = _run(loss, [out], tgt[:, None], w[:, None])
    assert terms["offset"] == pytest.approx(_np_offset(out, tgt, w, "smooth").mean(), rel=1e-5)


def test_offsets_outside_the_disk_and_zero_weight_joints_are_ignored(batch):
    out, tgt, w = batch
    loss = PoseLoss(layout.HEATMAP_OFFSET, K)
    base, _ = _run(loss, [out], tgt[:, None], w[:, None])
    moved = out.copy()
    outside = ~(tgt[:, :K] > 0)
    moved[:, K:2 * K][outside] += 5.0                 # offsets outside every disk
    moved[:, 2 * K:][outside] -= 5.0
    moved[1, [2, K + 2, 2 * K + 2]] += 3.0            # every channel of the weight-0 joint
    again, _ = _run(loss, [moved], tgt[:, None], w[:, None])
    np.testing.assert_allclose(again, base, rtol=1e-6)
    inside = out.copy()
    inside[0, K][tgt[0, 0] > 0] += 1.0                # an offset inside a disk counts
    assert _run(loss, [inside], tgt[:, None], w[:, None])[0][0] > base[0]

    x = mx.nd.array(out)
    x.attach_grad()
    with mx.autograd.record():
        total, _ = loss([x], mx.nd.array(tgt[:, None]), mx.nd.array(w[:, None]))
    total.backward()
    g = x.grad.asnumpy()
    assert not g[1, [2, K + 2, 2 * K + 2]].any()      # no gradient pushes the unlabelled joint
    assert not g[:, K:2 * K][outside].any() and g[:, :K].any()


def test_ohkm_averages_the_hardest_joints(batch):
    out, tgt, w = batch
    loss = PoseLoss(layout.HEATMAP, K, ohkm_topk=2)
    total, _ = _run(loss, [out[:, :K]], tgt[:, None, :K], w[:, None])
    per_joint = _np_heatmap_mse(out, tgt, w)
    want = np.sort(per_joint, axis=1)[:, -2:].mean(axis=1)
    np.testing.assert_allclose(total, want, rtol=1e-5)


def test_logistic_heatmap_loss_is_stable(batch):
    out, tgt, w = batch
    logits = out.copy()
    logits[0, 0] = 80.0                               # saturated logits stay finite
    logits[0, 1] = -80.0
    loss = PoseLoss(layout.HEATMAP_OFFSET, K, heatmap_loss="bce")
    _, terms = _run(loss, [logits], tgt[:, None], w[:, None])
    x = logits[:, :K].astype(np.float64)
    y = tgt[:, :K]
    bce = np.logaddexp(0, x) - x * y                  # -[y log s(x) + (1-y) log(1-s(x))]
    want = (bce * w[:, :, None, None]).mean(axis=(2, 3)).mean(axis=1).mean()
    assert np.isfinite(terms["heatmap"])
    assert terms["heatmap"] == pytest.approx(want, rel=1e-5)


def test_stage_weights_and_per_stage_targets(batch):
    out, tgt, w = batch
    tgt2 = tgt.copy()
    tgt2[:, :K] *= 0.5                                # a softer target for stage 1 (coarse-to-fine)
    loss = PoseLoss(layout.HEATMAP_OFFSET, K, stage_weights=(0.25, 1.0))
    total, _ = _run(loss, [out, out * 0.5], np.stack([tgt2, tgt], 1), np.stack([w, w], 1))
    s1 = _np_heatmap_mse(out, tgt2, w).mean(1) + _np_offset(out, tgt2, w).mean(1)
    s2 = _np_heatmap_mse(out * 0.5, tgt, w).mean(1) + _np_offset(out * 0.5, tgt, w).mean(1)
    np.testing.assert_allclose(total, 0.25 * s1 + s2, rtol=1e-5)
    shared, _ = _run(PoseLoss(layout.HEATMAP_OFFSET, K), [out, out], tgt[:, None], w[:, None])
    single, _ = _run(PoseLoss(layout.HEATMAP_OFFSET, K), [out], tgt[:, None], w[:, None])
    np.testing.assert_allclose(shared, 2 * single, rtol=1e-6)     # one target shared by 2 stages


def test_loss_argument_errors(batch):
    out, tgt, w = batch
    with pytest.raises(ValueError, match="offset_loss"):
        PoseLoss(layout.HEATMAP_OFFSET, K, offset_loss="l3")
    with pytest.raises(ValueError, match="heatmap_loss"):
        PoseLoss(layout.HEATMAP_OFFSET, K, heatmap_loss="focal")
    with pytest.raises(ValueError, match="ohkm_topk"):
        PoseLoss(layout.HEATMAP_OFFSET, K, ohkm_topk=K + 1)
    with pytest.raises(ValueError, match="stage"):
        _run(PoseLoss(layout.HEATMAP_OFFSET, K), [out, out, out], np.stack([tgt, tgt], 1),
             np.stack([w, w], 1))
    with pytest.raises(ValueError, match="stage_weights"):
        _run(PoseLoss(layout.HEATMAP_OFFSET, K, stage_weights=(1.0,)), [out, out],
             tgt[:, None], w[:, None])


def test_report_schedule():
    """Adam lr 1e-3, x0.1 at epochs 110 and 140 (0-based epoch index, as PyTorch's MultiStepLR)."""
    s = MultiStepSchedule(1e-3, [110, 140], 0.1)
    assert [s.lr_at(e) for e in (0, 109, 110, 139, 140, 149)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    warm = MultiStepSchedule(1e-3, [110, 140], 0.1, warmup_epochs=1, warmup_factor=0.1)
    assert warm.lr_at(0, 0, 10) == pytest.approx(1e-4)
    assert warm.lr_at(0, 5, 10) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert warm.lr_at(1, 0, 10) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="increasing"):
        MultiStepSchedule(1e-3, [140, 110])


def test_logistic_loss_needs_a_sigmoid_codec():
    """Checked when the config is loaded (gluonpose.config's rules), before anything is read."""
    from gluonpose.config import load_config
    load_config(None, ["loss.heatmap_loss=mse"])
    load_config(None, ["loss.heatmap_loss=bce", "codec.params={heatmap_activation: sigmoid}"])
    with pytest.raises(ValueError, match="heatmap_activation=sigmoid"):
        load_config(None, ["loss.heatmap_loss=bce"])
    with pytest.raises(ValueError, match="heatmap_activation=null"):
        load_config(None, ["codec.params={heatmap_activation: sigmoid}"])
