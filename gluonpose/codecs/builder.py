"""Codec factory from plain keyword arguments (config files name codecs by ``type``)."""
import inspect

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


#: Constructor arguments a config's ``codec`` section sets outside ``params``.
_SECTION_ARGS = ("input_size_wh", "heatmap_size_wh", "num_joints")


def codec_params(type):
    """``{name: default}`` of the keyword arguments ``codec.params`` may set for codec ``type``:
    the codec's constructor arguments (without the sizes and joints, which have their own keys)
    and its per-stage list (``stage_sigmas`` for gaussian, ``stage_radii`` for heatmap_offset)."""
    cls = _codec_class(type)
    params = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "self" and name not in _SECTION_ARGS
              and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    params["stage_sigmas" if cls is GaussianHeatmapCodec else "stage_radii"] = None
    return params


def check_codec_params(type, params, where="codec.params"):
    """Raise :class:`~gluonpose.errors.ConfigError` for a key of ``params`` that codec ``type``
    does not take (the message lists the valid ones)."""
    valid = codec_params(type)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError("unknown config key %s for codec type %r; valid keys of %s: %s"
                          % (", ".join("%r" % (where + "." + k) for k in unknown), type, where,
                             ", ".join(sorted(valid))))
    return valid


def build_codec_from_config(codec_cfg, num_joints):
    """``codec`` config section (``type``, ``input_size``, ``heatmap_size``, ``params``) -> codec
    (or :class:`MultiStageTargets` when ``params`` holds a per-stage list)."""
    check_codec_params(codec_cfg["type"], codec_cfg["params"])
    return build_codec(codec_cfg["type"], input_size_wh=tuple(codec_cfg["input_size"]),
                       heatmap_size_wh=tuple(codec_cfg["heatmap_size"]), num_joints=num_joints,
                       **dict(codec_cfg["params"]))
