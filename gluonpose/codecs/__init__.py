"""Target codecs: one object encodes training targets and decodes network outputs (exact inverses).

Common interface: ``encode(keypoints (K,2), weights (K,)) -> dict(target, target_weight)``,
``decode(outputs (N,C,H,W)) -> (coords (N,K,2) input-crop px, scores (N,K))``,
``flip_back(outputs) -> outputs``; attributes ``layout``, ``num_joints``, ``input_size_wh``,
``heatmap_size_wh``, ``udp``.
"""
from .builder import build_codec, build_stage_codecs, codec_types
from .gaussian import GaussianHeatmapCodec
from .multistage import MultiStageTargets
from .offset import HeatmapOffsetCodec

__all__ = ["GaussianHeatmapCodec", "HeatmapOffsetCodec", "MultiStageTargets", "build_codec",
           "build_stage_codecs", "codec_types"]
