"""The codec interface, declared once: every codec (and :class:`MultiStageTargets`) implements it.

Code that uses a codec (training transform, loss check, predictor, oracle, visualisation) relies
on these members only, never on probing with ``getattr``.
"""
import abc

import numpy as np

from ..errors import ConfigError


class Codec(abc.ABC):
    """Encodes training targets and decodes network outputs (exact inverses).

    Attributes every codec sets:
        layout: output channel layout (``codecs/layout.py``: ``'heatmap'`` or ``'heatmap_offset'``).
        input_size_wh: network input (w, h) in pixels.
        heatmap_size_wh: network output (w, h) in heatmap pixels.
        num_joints: K.
        udp: True for the UDP conventions (stride ``(in-1)/(out-1)``, unbiased crops); the crop
            transforms take it from the codec.
        flip_pairs: left/right joint pairs used by :meth:`flip_back`.
        heatmap_activation: ``None`` (heatmap channels are probabilities) or ``'sigmoid'``
            (they are logits; the decoder applies the sigmoid; trained with a logistic loss).
    """

    layout = None
    heatmap_activation = None
    #: ``{constructor argument: its valid values}``, checked when a config is loaded.
    PARAM_CHOICES = {}

    @property
    @abc.abstractmethod
    def num_channels(self):
        """Output channels C the decoder expects (``layout.num_channels(layout, K)``)."""

    @abc.abstractmethod
    def encode(self, keypoints, weights):
        """(K, 2) input-crop keypoints, (K,) weights -> dict(target, target_weight) float32."""

    @abc.abstractmethod
    def decode(self, outputs):
        """(N, C, H, W) outputs -> (coords (N, K, 2) input-crop pixels, scores (N, K))."""

    @abc.abstractmethod
    def flip_back(self, outputs):
        """(N, C, H, W) outputs of the horizontally flipped input -> outputs of the original."""

    @abc.abstractmethod
    def flip_spec(self):
        """:class:`~gluonpose.codecs.flipfuse.FlipSpec`: :meth:`flip_back` as a per-channel
        affine of the mirrored maps (the compiled flip test applies it in one pass)."""

    @property
    def default_flip_fusion(self):
        """The flip fusion used when the config leaves ``test.flip_fusion`` null: ``maps`` (the
        official HRNet flip test)."""
        return "maps"

    def supports_flip_fusion(self, fusion):
        """Whether :meth:`decode_flip` can fuse the flip test this way (``maps`` and ``coords``
        work for every codec; ``votes`` needs a Hough-voting decoder)."""
        return fusion in ("maps", "coords")

    def decode_flip(self, outputs, flipped, fusion="maps", *, inplace=False):
        """Decode with the flip test: ``outputs`` of the crops and ``flipped`` of their mirror
        images (before ``flip_back``), fused as ``fusion`` says
        (:data:`~gluonpose.codecs.flipfuse.FLIP_FUSIONS`): ``maps`` decodes the map average
        ``(outputs + flip_back(flipped)) / 2`` (official HRNet; written into ``outputs`` with
        ``inplace``), ``coords`` averages the two decoded positions and scores.

        Returns:
            (coords (N, K, 2) float32 input-crop pixels, scores (N, K)).
        """
        from .flipfuse import flip_average, flip_back
        spec = self.flip_spec()
        if fusion == "maps":
            return self.decode(flip_average(spec, outputs, flipped, out=outputs if inplace else None))
        if fusion == "coords":
            c1, s1 = self.decode(outputs)
            c2, s2 = self.decode(flip_back(spec, flipped))
            return (((c1.astype(np.float64) + c2) * 0.5).astype(np.float32),
                    ((s1.astype(np.float64) + s2) * 0.5).astype(np.float32))
        raise ConfigError("flip fusion %r is not available for %r (valid: maps, coords%s)"
                          % (fusion, self, ", votes" if self.supports_flip_fusion("votes") else ""))

    @property
    def stages(self):
        """Per-stage codecs, in stage order (a single codec: itself)."""
        return (self,)

    @property
    def num_stages(self):
        """Number of stacked target stages (1 for a single codec)."""
        return len(self.stages)

    @property
    def last(self):
        """The codec that decodes and flips (the last stage's; a single codec: itself)."""
        return self.stages[-1]
