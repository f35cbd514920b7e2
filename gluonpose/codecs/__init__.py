"""Target codecs: one object encodes training targets and decodes network outputs (exact inverses).

The interface is declared once, by :class:`~gluonpose.codecs.base.Codec`:
``encode(keypoints (K,2), weights (K,)) -> dict(target, target_weight)``,
``decode(outputs (N,C,H,W)) -> (coords (N,K,2) input-crop px, scores (N,K))``,
``flip_back(outputs) -> outputs``; attributes ``layout``, ``num_joints``, ``num_channels``,
``input_size_wh``, ``heatmap_size_wh``, ``udp``, ``flip_pairs``, ``heatmap_activation``,
``stages`` / ``num_stages`` / ``last``.
"""
from .base import Codec
from .builder import build_codec, build_codec_from_config, build_stage_codecs, codec_types
from .gaussian import GaussianHeatmapCodec
from .multistage import MultiStageTargets
from .offset import HeatmapOffsetCodec

__all__ = ["Codec", "GaussianHeatmapCodec", "HeatmapOffsetCodec", "MultiStageTargets", "build_codec",
           "build_codec_from_config", "build_stage_codecs", "codec_types"]
