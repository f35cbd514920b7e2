"""One configuration system: YAML files with ``_base_`` inheritance and ``key=value`` CLI overrides.

* A YAML file may name one or more ``_base_`` files (paths relative to itself); they are merged in
  order, then the file itself on top (dicts merge recursively, everything else replaces).
* Everything is merged onto :data:`DEFAULTS`, which is also the schema: a key that is not in it is an
  error naming the valid keys of that section, and a value must have the type of its default
  (:data:`TYPES` names the type where the default does not say it, e.g. ``None``); an int is
  accepted where a float is expected. ``codec.params`` is checked against the codec's arguments.
* Other YAML files (ensembles: :mod:`gluonpose.evaluation.tta`) are read by the same code with
  their own defaults: :func:`load_yaml_config`.
* CLI overrides ``section.key=value`` (value parsed as YAML: ``train.lr=5e-4``,
  ``codec.input_size=[288,384]``).
* The result is a frozen :class:`Config`; sections are passed on as plain keyword arguments
  (``get_model(**cfg.model)``); nothing holds the whole config.
"""
import copy
import os
import re

import yaml

from .codecs.flipfuse import FLIP_FUSIONS


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 and Python do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml_load(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)

#: The schema and the defaults. Comments say what each key means.
DEFAULTS = {
    "model": {
        "name": "mshrnet_w32_2stage",     # gluonpose.get_model name
        "num_joints": 17,
        "head": "heatmap_offset",         # heatmap_offset | heatmap
        "stage_input": "features",        # features | image (multi-stage only)
        "cross_stage": "identity",        # identity | conv1x1 (multi-stage only)
        "final_conv_kernel": 1,
        "pretrained": "",                 # ImageNet HRNet checkpoint (.pth/.npz/.params) for every stage
        "pretrained_kind": "imagenet",    # imagenet | pose
    },
    "codec": {
        "type": "heatmap_offset",         # heatmap_offset | gaussian
        "input_size": [192, 256],         # (w, h)
        "heatmap_size": [48, 64],         # (w, h)
        "params": {},                     # codec keyword arguments (radius, sigma, udp, decode,
                                          # stage_radii / stage_sigmas for coarse-to-fine targets)
    },
    "data": {
        "train": [],                      # list of {type, ann_file, img_prefix, ratio, ...}
                                          # (types: gluonpose.data.datasets.dataset_types())
        "val": {},                        # {type, ann_file, img_prefix}: ground truth for AP
        "det_json": "",                   # person detections (COCO results format) for testing
        "on_bad": "skip",                 # skip | raise: bad records / images
    },
    "augment": {                          # the report: rotation [-30, 30], scale [0.8, 1.2], flip, half-body
        "sampling": "official",           # official (HRNet JointsDataset: clipped normals, rotation w.p. 0.6)
                                          # | uniform (uniform in the same bounds, every sample rotated)
        "rot_factor": 15.0,               # ROT_FACTOR: rotation clip(N * rf, -2 rf, 2 rf) degrees
        "scale_factor": 0.2,              # SCALE_FACTOR: scale clip(1 + N * sf, 1 - sf, 1 + sf)
        "rotation_prob": None,            # None = the sampling's (0.6 official, 1.0 uniform)
        "flip_prob": 0.5,
        "half_body_prob": 0.3,
        "half_body_min_joints": 8,        # half-body only with MORE labelled joints than this
    },
    "loader": {
        "batch_size_per_device": 32,
        "num_workers": 4,
        "val_batch_size": 32,
        "keep_freed_memory_mb": 256,      # glibc: keep this much freed memory for the next samples
                                          # (saves ~1 ms of page faults per sample; 0 = glibc default)
    },
    "loss": {
        "heatmap_weight": 1.0,
        "offset_weight": 1.0,
        "stage_weights": [],              # default: 1 for every stage
        "ohkm_topk": 0,                   # 0 = off; else top-k hardest keypoints per sample
        "offset_loss": "l2",              # l2 (UDP-Pose) | smooth_l1 (G-RMI's Huber)
        "heatmap_loss": "mse",            # mse | bce (G-RMI logistic loss; codec heatmap_activation: sigmoid)
    },
    "train": {
        "optimizer": "adam",
        "lr": 1.0e-3,
        "wd": 0.0,
        "lr_steps": [110, 140],
        "lr_factor": 0.1,
        "epochs": 150,
        "warmup_epochs": 0,
        "warmup_factor": 0.1,
        "seed": 0,
        "work_dir": "work_dirs/default",
        "checkpoint_interval": 1,         # epochs between checkpoints and curves.png (the final epoch always)
        "val_interval": 0,                # 0 = no validation during training
        "val_errors": "continue",         # continue | stop: a failing validation (checkpoint saved first)
        "log_interval": 20,
        "gpus": "",
        "kvstore": "device",
        "gradient_compression": "none",   # none | 2bit (MXNet's, dist kvstores; the report: plain fp32)
        "compression_threshold": 0.5,     # 2bit: gradients are sent as -t / 0 / +t (+ residual)
        "kvstore_bigarray_bound": 1000000,  # arrays with more elements are split over all servers
        "static_alloc": True,             # hybridize(static_alloc, static_shape); false: ~1/3 less peak memory
    },
    "test": {
        "flip": True,
        "use_gt_boxes": False,
        "image_thr": 0.0,
        "in_vis_thr": 0.2,
        "oks_thr": 0.9,
        "batch_size": 32,
        "flip_fusion": None,              # flip test: maps | votes | coords; null = the codec's (Hough: votes)
        "workers": 2,                     # loader threads of the evaluation pipeline (0: one thread)
    },
    "reference": {                        # a published result this config reproduces (informational;
        "checkpoint": "",                 # printed by scripts/test_mshrnet.py): the official weights,
        "val_ap": None,                   # their COCO val2017 AP with the config's boxes,
        "source": "",                     # and where that number is published
    },
}

#: Types of the keys whose default does not say it (``None``, an empty list or an int that may be
#: fractional); every other key takes the type of its default. Grammar: ``bool``, ``int``,
#: ``float``, ``str``, ``dict``, ``list``, ``list[T]``, ``pair[T]`` (exactly two), ``any``,
#: alternatives joined by ``|`` (``float|None``).
TYPES = {
    "codec.input_size": "pair[int]",
    "codec.heatmap_size": "pair[int]",
    "codec.params": "dict",
    "test.flip_fusion": "str|None",
    "data.train": "list[dict]",
    "data.val": "dict",
    "loss.stage_weights": "list[float]",
    "train.warmup_epochs": "float",
    "train.gpus": "str|int",
    "train.kvstore": "str|None",
}

from .errors import ConfigError  # noqa: E402
from .utils.io import atomic_write  # noqa: E402

_SCALARS = {"bool": "a boolean (true/false)", "int": "an integer", "float": "a number",
            "str": "a string", "dict": "a mapping", "list": "a list", "any": "anything",
            "None": "null"}


def _spec_of(default):
    """Type spec of a default value (see :data:`TYPES`)."""
    if default is None:
        return "any"
    for name, cls in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", dict)):
        if isinstance(default, cls):
            return name
    if isinstance(default, (list, tuple)):
        kinds = {_spec_of(v) for v in default}
        return "list[%s]" % kinds.pop() if len(kinds) == 1 and not kinds & {"dict", "any"} else "list"
    return "any"


def _describe(spec):
    """``'float|None'`` -> ``'a number or null'``; ``'pair[int]'`` -> ``'a pair [a, b] of integers'``."""
    def one(alt):
        if not alt.startswith(("list[", "pair[")):
            return _SCALARS[alt]
        words = one(alt[5:-1]).split(" (")[0].split(" ")[1:]     # drop the article and the hint
        return "%s of %s" % ("a list" if alt[0] == "l" else "a pair [a, b]",
                             " ".join([words[0] + "s"] + words[1:]))
    return " or ".join(one(alt) for alt in spec.split("|"))


def _convert(value, alt):
    """``value`` as type ``alt``, or raise TypeError."""
    if alt == "any":
        return value
    if alt == "None":
        if value is None:
            return None
    elif alt == "bool":
        if isinstance(value, bool):
            return value
    elif alt == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif alt == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif alt == "str":
        if isinstance(value, str):
            return value
    elif alt == "dict":
        if isinstance(value, dict):
            return value
    elif alt == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
    elif alt.startswith(("list[", "pair[")):
        if isinstance(value, (list, tuple)) and (alt[0] == "l" or len(value) == 2):
            return [_convert(v, alt[5:-1]) for v in value]
    else:
        raise ValueError("bad type spec %r" % alt)
    raise TypeError(alt)


def check_value(where, value, spec):
    """``value`` checked (and ints widened to float) against a type ``spec`` (see :data:`TYPES`);
    raises :class:`ConfigError` naming the key ``where``, the expected type and the value."""
    for alt in spec.split("|"):
        try:
            return _convert(value, alt)
        except TypeError:
            continue
    raise ConfigError("%s must be %s, got %r (%s)"
                      % (where, _describe(spec), value, type(value).__name__))


#: Keys whose value must be one of a few words, checked at load time.
CHOICES = {
    ("data", "on_bad"): ("skip", "raise"),
    ("train", "val_errors"): ("continue", "stop"),
    ("train", "gradient_compression"): ("none", "2bit"),
    ("augment", "sampling"): ("official", "uniform"),
    ("test", "flip_fusion"): FLIP_FUSIONS + (None,),
}


def _check_choices(cfg, choices=CHOICES):
    for (section, key), valid in choices.items():
        value = cfg[section][key]
        if value not in valid:
            raise ConfigError("%s.%s must be one of %s, got %r"
                              % (section, key, ", ".join("null" if v is None else v for v in valid), value))


def _number(lo=None, hi=None, hi_open=False, none=False, integer=False):
    """Checker for a number in [lo, hi] (or [lo, hi)); ``none`` also accepts null."""
    kind = "an integer" if integer else "a number"
    if hi is None:
        rng = "" if lo is None else " >= %s" % lo
    else:
        rng = " in [%s, %s%s" % (lo, hi, ")" if hi_open else "]")
    want = kind + rng + (" or null" if none else "")

    def check(value):
        if value is None:
            return none
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        if lo is not None and value < lo:
            return False
        return hi is None or (value < hi if hi_open else value <= hi)
    check.want = want
    return check


#: Numbers checked at load time (section -> key -> checker with a ``want`` description).
CHECKS = {
    "augment": {
        "rot_factor": _number(0, 180),
        "scale_factor": _number(0, 1, hi_open=True),
        "rotation_prob": _number(0, 1, none=True),
        "flip_prob": _number(0, 1),
        "half_body_prob": _number(0, 1),
        "half_body_min_joints": _number(0, integer=True),
    },
    "reference": {
        "val_ap": _number(0, 1, none=True),
    },
    "test": {
        "workers": _number(0, integer=True),
    },
}


def _check_values(cfg):
    for section, checks in CHECKS.items():
        for key, check in checks.items():
            value = cfg[section][key]
            if not check(value):
                raise ConfigError("%s.%s must be %s, got %r" % (section, key, check.want, value))


class Config(dict):
    """A frozen nested dict with attribute access (``cfg.train.lr``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("config has no key %r; keys: %s" % (name, ", ".join(self))) from None

    def __setitem__(self, key, value):
        raise TypeError("Config is frozen; use load_config(..., overrides=[...])")

    __setattr__ = __setitem__

    def to_dict(self):
        return _thaw(self)


def _freeze(obj):
    if isinstance(obj, dict):
        out = Config()
        for k, v in obj.items():
            dict.__setitem__(out, k, _freeze(v))
        return out
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


def _thaw(obj):
    if isinstance(obj, dict):
        return {k: _thaw(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_thaw(v) for v in obj]
    return obj


def _merge(base, update, schema, path="", types=None):
    """Merge ``update`` into ``base`` (in place), checking keys against ``schema`` and values
    against the types of the schema's defaults (or ``types[dotted key]``)."""
    if schema is not None and not isinstance(update, dict):
        raise ConfigError("%s must be a mapping, got %r (%s)"
                          % (path.rstrip("."), update, type(update).__name__))
    for key, value in update.items():
        where = path + key
        if schema is not None:
            if key not in schema:
                raise ConfigError("unknown config key %r; valid keys%s: %s"
                                  % (where, " of " + path.rstrip(".") if path else "",
                                     ", ".join(sorted(schema))))
            sub_schema = schema[key]
            if isinstance(sub_schema, dict) and value is None:
                # an empty section ("test:" alone) keeps its defaults; "val: null" is the default {}
                base[key] = copy.deepcopy(sub_schema) if not sub_schema else base[key]
                continue
            value = check_value(where, value, (types or {}).get(where) or _spec_of(sub_schema))
        else:
            sub_schema = None
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            # free-form dicts (empty in the schema) are not checked below this level
            _merge(base[key], value, sub_schema if sub_schema else None, where + ".", types)
        else:
            base[key] = copy.deepcopy(value)
    return base


def check_section(value, defaults, where, types=None):
    """A mapping ``value`` merged onto a copy of ``defaults`` with the same key and type checks as
    a config file (for list entries with their own schema, e.g. ensemble members)."""
    if not isinstance(value, dict):
        raise ConfigError("%s must be a mapping, got %r (%s)"
                          % (where, value, type(value).__name__))
    return _merge(copy.deepcopy(defaults), value, defaults, where + ".", types)


def read_yaml(path, _seen=()):
    """Read a YAML config with its ``_base_`` chain resolved (not yet merged onto the defaults)."""
    path = os.path.abspath(path)
    if path in _seen:
        raise ConfigError("circular _base_ chain: %s" % " -> ".join(_seen + (path,)))
    if not os.path.isfile(path):
        raise ConfigError("config file not found: %s" % path)
    with open(path, encoding="utf-8") as f:
        try:
            data = _yaml_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError("cannot parse %s: %s" % (path, err)) from err
    if not isinstance(data, dict):
        raise ConfigError("%s must hold a mapping at the top level" % path)
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        _merge(merged, read_yaml(base_path, _seen + (path,)), None)
    return _merge(merged, data, None)


def parse_override(text):
    """``'a.b=value'`` -> (['a', 'b'], parsed value)."""
    if "=" not in text:
        raise ConfigError("override %r must look like section.key=value" % text)
    key, raw = text.split("=", 1)
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError("cannot parse the value of override %r: %s" % (text, err)) from err
    return key.strip().split("."), value


def _check_codec(codec_cfg):
    """``codec.type`` and ``codec.params`` against the codec's constructor (keys and the types of
    its defaults), at load time instead of a TypeError when the codec is built."""
    from .codecs.builder import check_codec_params, codec_types

    if codec_cfg["type"] not in codec_types():
        raise ConfigError("codec.type: unknown codec type %r; valid types: %s"
                          % (codec_cfg["type"], ", ".join(sorted(codec_types()))))
    valid = check_codec_params(codec_cfg["type"], codec_cfg["params"])
    for key, value in codec_cfg["params"].items():
        codec_cfg["params"][key] = check_value("codec.params." + key, value, _spec_of(valid[key]))


def _check_flip_fusion(cfg):
    """``test.flip_fusion: votes`` needs the heatmap + offset codec with Hough decoding."""
    codec = cfg["codec"]
    decoder = codec["params"].get("decoder", "hough")
    if cfg["test"]["flip_fusion"] == "votes" and (codec["type"] != "heatmap_offset" or decoder != "hough"):
        raise ConfigError("test.flip_fusion 'votes' adds Hough vote maps: it needs codec.type "
                          "heatmap_offset with codec.params.decoder hough (got %s, decoder %s); "
                          "use maps or coords" % (codec["type"], decoder))


def load_yaml_config(path=None, defaults=None, types=None, overrides=(), choices=None):
    """``defaults`` <- YAML file (with its bases) <- ``overrides``, every key and value checked
    against ``defaults`` (and ``types``, ``choices``: see :data:`TYPES`, :data:`CHOICES`); returns
    a plain dict. :func:`load_config` with other
    defaults, for other YAML files (ensembles)."""
    cfg = copy.deepcopy(defaults)
    if path:
        _merge(cfg, read_yaml(path), defaults, types=types)
    for text in overrides:
        keys, value = parse_override(text)
        update = value
        for k in reversed(keys):
            update = {k: update}
        _merge(cfg, update, defaults, types=types)
    _check_choices(cfg, choices or {})
    return cfg


def load_config(path=None, overrides=()):
    """Defaults <- YAML file (with its bases) <- ``overrides``; returns a frozen :class:`Config`."""
    # keys with a range checker (CHECKS) get their type checked there, with the range in the message
    types = dict(TYPES, **{"%s.%s" % (sec, key): "any" for sec, keys in CHECKS.items() for key in keys})
    cfg = load_yaml_config(path, DEFAULTS, types, overrides, choices=CHOICES)
    _check_codec(cfg["codec"])
    _check_values(cfg)
    _check_flip_fusion(cfg)
    return _freeze(cfg)


def dump_config(cfg, path):
    """Write ``cfg`` as YAML (atomically: temp file + rename, see :mod:`gluonpose.utils.io`)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(_thaw(cfg), f, sort_keys=False)
    atomic_write(path, write)
