"""The codec interface, declared once: every codec (and :class:`MultiStageTargets`) implements it.

Code that uses a codec (training transform, loss check, predictor, oracle, visualisation) relies
on these members only, never on probing with ``getattr``.
"""
import abc


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
