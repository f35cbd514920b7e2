"""Per-stage targets for coarse-to-fine supervision of a multi-stage network (MSPN-style).

MSPN supervises early stages with wider Gaussians (OpenCV kernels 15/11/9/7 -> sigma ~2.6..1.4)
and the last one with the finest (kernel 5 / 7). Here every stage gets its own codec (e.g. a larger
``sigma`` or ``radius`` for stage 1); all must share the layout, joints and sizes so the per-stage
targets stack into one array, and the **last** codec decodes and flips.
"""
import numpy as np
from ..errors import ConfigError

from .base import Codec


class MultiStageTargets(Codec):
    """A list of same-shape codecs presented through the single-codec interface.

    ``encode`` returns ``target`` (S, C, H, W) and ``target_weight`` (S, K) float32 (the weights
    can differ per stage: a wider disk/Gaussian may still touch the map when a narrow one does not).
    ``decode`` / ``flip_back`` use the last stage's codec.
    """

    def __init__(self, codecs):
        codecs = list(codecs)
        if not codecs:
            raise ConfigError("MultiStageTargets needs at least one codec")
        ref = codecs[-1]
        for i, c in enumerate(codecs):
            if not isinstance(c, Codec):
                raise TypeError("stage %d: %r is not a gluonpose.codecs.base.Codec" % (i, c))
            got = (c.layout, c.num_joints, tuple(c.input_size_wh), tuple(c.heatmap_size_wh), c.udp,
                   c.heatmap_activation)
            want = (ref.layout, ref.num_joints, tuple(ref.input_size_wh), tuple(ref.heatmap_size_wh),
                    ref.udp, ref.heatmap_activation)
            if got != want:
                raise ConfigError("stage %d codec %r differs from the last stage %r in "
                                  "(layout, joints, input size, heatmap size, udp, heatmap "
                                  "activation): %s vs %s"
                                  % (i, c, ref, got, want))
        self.codecs = tuple(codecs)

    @property
    def stages(self):
        return self.codecs

    layout = property(lambda self: self.last.layout)
    num_joints = property(lambda self: self.last.num_joints)
    input_size_wh = property(lambda self: self.last.input_size_wh)
    heatmap_size_wh = property(lambda self: self.last.heatmap_size_wh)
    num_channels = property(lambda self: self.last.num_channels)
    udp = property(lambda self: self.last.udp)
    flip_pairs = property(lambda self: self.last.flip_pairs)
    heatmap_activation = property(lambda self: self.last.heatmap_activation)

    def __repr__(self):
        return "MultiStageTargets(%s)" % ", ".join(repr(c) for c in self.codecs)

    def encode(self, keypoints, weights):
        """(K, 2), (K,) -> dict(target (S, C, H, W), target_weight (S, K))."""
        parts = [c.encode(keypoints, weights) for c in self.codecs]
        return {"target": np.stack([p["target"] for p in parts]),
                "target_weight": np.stack([p["target_weight"] for p in parts])}

    def decode(self, outputs):
        """Last stage's decode: (N, C, H, W) -> (coords (N, K, 2), scores (N, K))."""
        return self.last.decode(outputs)

    def flip_back(self, outputs):
        """Last stage's flip_back (N, C, H, W) -> (N, C, H, W)."""
        return self.last.flip_back(outputs)

    def flip_spec(self):
        return self.last.flip_spec()

    @property
    def default_flip_fusion(self):
        return self.last.default_flip_fusion

    def supports_flip_fusion(self, fusion):
        return self.last.supports_flip_fusion(fusion)

    def decode_flip(self, outputs, flipped, fusion="maps", *, inplace=False):
        return self.last.decode_flip(outputs, flipped, fusion, inplace=inplace)
