"""Codec factory from plain keyword arguments (config files name codecs by ``type``)."""
from ..errors import ConfigError
from .gaussian import GaussianHeatmapCodec
from .multistage import MultiStageTargets
from .offset import HeatmapOffsetCodec


def codec_types():
    """Mapping of valid ``type`` names to codec classes."""
    return {"gaussian": GaussianHeatmapCodec, "heatmap_offset": HeatmapOffsetCodec}


def _codec_class(type):
    types = codec_types()
    if type not in types:
        raise ConfigError("unknown codec type %r; valid types: %s" % (type, ", ".join(sorted(types))))
    return types[type]


def build_stage_codecs(type, stage_sigmas=None, stage_radii=None, **kwargs):
    """One codec per stage, stage i getting ``sigma=stage_sigmas[i]`` (gaussian) or
    ``radius=stage_radii[i]`` (heatmap_offset); the other kwargs are shared.

    Example (2-stage coarse-to-fine, 256x192): ``build_stage_codecs('gaussian',
    stage_sigmas=(3, 2))`` or ``build_stage_codecs('heatmap_offset', stage_radii=(5.0, 3.5))``.
    """
    cls = _codec_class(type)
    key, values = ("sigma", stage_sigmas) if cls is GaussianHeatmapCodec else ("radius", stage_radii)
    other = stage_radii if cls is GaussianHeatmapCodec else stage_sigmas
    if other is not None:
        raise ConfigError("codec type %r takes per-stage %s, not %s"
                          % (type, "stage_sigmas" if key == "sigma" else "stage_radii",
                            "stage_radii" if key == "sigma" else "stage_sigmas"))
    if values is None or len(values) == 0:
        raise ConfigError("codec type %r needs a non-empty per-stage list for %r" % (type, key))
    if key in kwargs:
        raise ConfigError("pass either %r or its per-stage list, not both" % key)
    return [cls(**dict(kwargs, **{key: v})) for v in values]


def build_codec(type, stage_sigmas=None, stage_radii=None, **kwargs):
    """Build a codec by name: ``'gaussian'`` or ``'heatmap_offset'`` with their constructor kwargs.

    With ``stage_sigmas`` / ``stage_radii`` a :class:`MultiStageTargets` over the per-stage codecs
    is returned (targets (S, C, H, W)); otherwise a single codec.
    """
    if stage_sigmas is not None or stage_radii is not None:
        return MultiStageTargets(build_stage_codecs(type, stage_sigmas, stage_radii, **kwargs))
    return _codec_class(type)(**kwargs)
