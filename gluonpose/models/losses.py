"""Training losses on every stage: heatmap term + offset term, masked by target weights.

Shapes: per stage an output (N, C, H, W) in the layout of :mod:`gluonpose.codecs.layout`, a target of
the same shape and a target weight (N, K). Joints with weight 0 (unlabelled, or unmapped from another
dataset) contribute nothing: they are ignored, never trained towards zero.

* heatmap term: official ``JointsMSELoss``: mean over joints of 0.5 * mean over (batch, pixels) of
  (w * (pred - gt))^2; with ``ohkm_topk`` > 0 the per-sample top-k hardest joints are averaged instead
  (``JointsOHKMMSELoss``).
  ``heatmap_loss='bce'``: the heatmap channels are logits and each pixel is a binary classification
  (sigmoid + logistic loss, G-RMI), weighted and averaged the same way; pair it with the codec's
  ``heatmap_activation: sigmoid``.
* offset term (heatmap_offset layout): x/y offsets are supervised only inside the target disk
  (gt heatmap > 0) of weighted joints; ``offset_loss='l2'`` (0.5 * squared error, UDP-Pose) or
  ``'smooth_l1'`` (Huber, G-RMI), averaged over joints and pixels like the heatmap term.
* stage s is weighted by ``stage_weights[s]`` (default 1 for all).
"""
import mxnet as mx

from ..codecs import layout as output_layout
from ..errors import ConfigError

OFFSET_LOSSES = ("l2", "smooth_l1")
HEATMAP_LOSSES = ("mse", "bce")


class PoseLoss:
    """Callable: ``loss(outputs, targets, target_weights) -> (total (N,) NDArray, terms dict)``.

    Args:
        layout: ``heatmap`` or ``heatmap_offset``.
        num_joints: K.
        heatmap_weight / offset_weight: weights of the two terms.
        stage_weights: one weight per stage (default: 1 each).
        ohkm_topk: 0 = plain mean over joints; k > 0 = online hard keypoint mining, top-k joints.
        offset_loss: ``l2`` or ``smooth_l1``.
        heatmap_loss: ``mse`` or ``bce`` (logistic loss on logits).

    ``outputs``: list of per-stage (N, C, H, W); ``targets``: (N, S, C, H, W) with S = 1 (shared by all
    stages) or S = number of stages (coarse-to-fine); ``target_weights``: (N, S, K).
    The returned total is per sample (N,), so ``backward`` works per device; ``terms`` holds scalar
    NDArrays ``heatmap`` and ``offset`` (batch means over stages) for logging.
    """

    def __init__(self, layout, num_joints=17, *, heatmap_weight=1.0, offset_weight=1.0, stage_weights=(),
                 ohkm_topk=0, offset_loss="l2", heatmap_loss="mse"):
        output_layout.num_channels(layout, num_joints)  # validates the layout
        if offset_loss not in OFFSET_LOSSES:
            raise ConfigError("offset_loss %r; valid: %s" % (offset_loss, ", ".join(OFFSET_LOSSES)))
        if heatmap_loss not in HEATMAP_LOSSES:
            raise ConfigError("heatmap_loss %r; valid: %s" % (heatmap_loss, ", ".join(HEATMAP_LOSSES)))
        if ohkm_topk < 0 or ohkm_topk > num_joints:
            raise ConfigError("ohkm_topk must be in [0, %d], got %r" % (num_joints, ohkm_topk))
        self.layout = layout
        self.num_joints = num_joints
        self.heatmap_weight = heatmap_weight
        self.offset_weight = offset_weight
        self.stage_weights = tuple(stage_weights)
        self.ohkm_topk = ohkm_topk
        self.offset_loss = offset_loss
        self.heatmap_loss = heatmap_loss

    def _reduce_joints(self, per_joint):
        """(N, K) per-joint losses -> (N,) per-sample (mean, or mean of the top-k)."""
        if self.ohkm_topk:
            top = mx.nd.topk(per_joint, axis=1, k=self.ohkm_topk, ret_typ="value")
            return top.mean(axis=1)
        return per_joint.mean(axis=1)

    def _stage(self, output, target, weight):
        k = self.num_joints
        w = weight.reshape((0, 0, 1, 1))
        pred_hm = mx.nd.slice_axis(output, axis=1, begin=0, end=k)
        gt_hm = mx.nd.slice_axis(target, axis=1, begin=0, end=k)
        if self.heatmap_loss == "bce":  # numerically stable logistic loss on logits
            bce = mx.nd.relu(pred_hm) - pred_hm * gt_hm + mx.nd.log1p(mx.nd.exp(-mx.nd.abs(pred_hm)))
            hm = (bce * w).mean(axis=(2, 3))
        else:
            hm = 0.5 * ((pred_hm - gt_hm) * w).square().mean(axis=(2, 3))
        hm = self._reduce_joints(hm)
        if self.layout != output_layout.HEATMAP_OFFSET:
            return hm, mx.nd.zeros_like(hm)
        mask = (gt_hm > 0) * w
        mask = mx.nd.concat(mask, mask, dim=1)
        diff = (mx.nd.slice_axis(output, axis=1, begin=k, end=3 * k)
                - mx.nd.slice_axis(target, axis=1, begin=k, end=3 * k)) * mask
        if self.offset_loss == "l2":
            off = 0.5 * diff.square()
        else:
            off = mx.nd.smooth_l1(diff, scalar=1.0)
        off = off.mean(axis=(2, 3))  # (N, 2K)
        off = self._reduce_joints(mx.nd.slice_axis(off, axis=1, begin=0, end=k)
                                  + mx.nd.slice_axis(off, axis=1, begin=k, end=2 * k))
        return hm, off

    def __call__(self, outputs, targets, target_weights):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        n_targets = targets.shape[1]
        if n_targets not in (1, len(outputs)):
            raise ValueError("targets carry %d stage(s) for %d network stages" % (n_targets, len(outputs)))
        weights = self.stage_weights or (1.0,) * len(outputs)
        if len(weights) != len(outputs):
            raise ConfigError("stage_weights has %d entries for %d stages" % (len(weights), len(outputs)))
        total, hm_sum, off_sum = 0, 0, 0
        for s, out in enumerate(outputs):
            t = min(s, n_targets - 1)
            hm, off = self._stage(out, targets[:, t], target_weights[:, t])
            total = total + weights[s] * (self.heatmap_weight * hm + self.offset_weight * off)
            hm_sum = hm_sum + hm.mean()
            off_sum = off_sum + off.mean()
        return total, {"heatmap": hm_sum, "offset": off_sum}
