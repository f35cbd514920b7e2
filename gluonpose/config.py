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
        "keep_checkpoints": 2,            # newest complete checkpoints kept with trainer states (resume)
        "keep_best": True,                # keep the best validation AP's parameters as best.params
        "keep_every": 0,                  # also keep the parameters of every N-th epoch (0: none)
        "checkpoint_minutes": 30.0,       # a mid-epoch checkpoint every N minutes (0: only on SIGTERM/SIGUSR1)
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


#: Choices of the training run that belong to no component below the config (the engine reads
#: them from here): kvstores, validation failure policy, gradient compression.
KVSTORES = ("local", "device", "dist_sync", "dist_device_sync", "dist_async", "horovod")
VAL_ERRORS = ("continue", "stop")
GRADIENT_COMPRESSIONS = ("none", "2bit")


class Choice:
    """Checker: the value is one of ``values`` (``None`` spelled null in messages)."""

    def __init__(self, values):
        self.values = tuple(values)
        self.want = "one of " + ", ".join("null" if v is None else str(v) for v in self.values)

    def __call__(self, value):
        return value in self.values


def _number(lo=None, hi=None, hi_open=False, lo_open=False, none=False, integer=False):
    """Checker for a number in [lo, hi] (or open ends); ``none`` also accepts null."""
    kind = "an integer" if integer else "a number"
    if hi is None:
        rng = "" if lo is None else (" > %s" if lo_open else " >= %s") % lo
    else:
        rng = " in %s%s, %s%s" % ("(" if lo_open else "[", lo, hi, ")" if hi_open else "]")
    want = kind + rng + (" or null" if none else "")

    def check(value):
        if value is None:
            return none
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        if lo is not None and (value <= lo if lo_open else value < lo):
            return False
        return hi is None or (value < hi if hi_open else value <= hi)
    check.want = want
    return check


def _checks():
    """The one validation table: ``"section.key"`` -> checker (a :class:`Choice` of what the
    component publishes, or a number range). Every entry is checked when a config is loaded,
    before any data or weights are read; rules relating several keys are in :data:`RULES`."""
    from .codecs.builder import codec_types
    from .codecs.flipfuse import FLIP_FUSIONS
    from .codecs.layout import LAYOUTS
    from .data.augment import SAMPLINGS
    from .data.datasets.base import ON_BAD_CHOICES
    from .models.losses import HEATMAP_LOSSES, OFFSET_LOSSES
    from .models.multistage import CROSS_STAGE, STAGE_INPUTS
    return {
        "model.head": Choice(LAYOUTS),
        "model.stage_input": Choice(STAGE_INPUTS),
        "model.cross_stage": Choice(CROSS_STAGE),
        "model.num_joints": _number(1, integer=True),
        "codec.type": Choice(sorted(codec_types())),
        "data.on_bad": Choice(ON_BAD_CHOICES),
        "augment.sampling": Choice(SAMPLINGS),
        "augment.rot_factor": _number(0, 180),
        "augment.scale_factor": _number(0, 1, hi_open=True),
        "augment.rotation_prob": _number(0, 1, none=True),
        "augment.flip_prob": _number(0, 1),
        "augment.half_body_prob": _number(0, 1),
        "augment.half_body_min_joints": _number(0, integer=True),
        "loader.batch_size_per_device": _number(1, integer=True),
        "loader.num_workers": _number(0, integer=True),
        "loss.heatmap_loss": Choice(HEATMAP_LOSSES),
        "loss.offset_loss": Choice(OFFSET_LOSSES),
        "loss.ohkm_topk": _number(0, integer=True),
        "train.lr": _number(0, lo_open=True),
        "train.epochs": _number(1, integer=True),
        "train.val_errors": Choice(VAL_ERRORS),
        "train.kvstore": Choice(KVSTORES + (None,)),
        "train.gradient_compression": Choice(GRADIENT_COMPRESSIONS),
        "train.compression_threshold": _number(0, lo_open=True),
        "train.kvstore_bigarray_bound": _number(1, integer=True),
        "train.checkpoint_interval": _number(1, integer=True),
        "train.keep_checkpoints": _number(1, integer=True),
        "train.keep_every": _number(0, integer=True),
        "train.checkpoint_minutes": _number(0),
        "test.flip_fusion": Choice(FLIP_FUSIONS + (None,)),
        "test.workers": _number(0, integer=True),
        "test.batch_size": _number(1, integer=True),
        "reference.val_ap": _number(0, 1, none=True),
    }


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        value = value[part]
    return value


def check_table(cfg, checks):
    """Every ``"section.key"`` of ``checks`` in ``cfg``: ConfigError naming the key, what it must
    be and the value."""
    for key, check in checks.items():
        value = _get(cfg, key)
        if not check(value):
            raise ConfigError("%s must be %s, got %r" % (key, check.want, value))


def _rule_codec(cfg):
    """codec.params: the codec's constructor arguments with the types of their defaults, and the
    choices the codec publishes (``PARAM_CHOICES``)."""
    from .codecs.builder import codec_types, check_codec_params
    codec = cfg["codec"]
    valid = check_codec_params(codec["type"], codec["params"])
    for key, value in codec["params"].items():
        codec["params"][key] = check_value("codec.params." + key, value, _spec_of(valid[key]))
    for key, values in codec_types()[codec["type"]].PARAM_CHOICES.items():
        if key in codec["params"] and not Choice(values)(codec["params"][key]):
            raise ConfigError("codec.params.%s must be %s for codec type %s, got %r"
                              % (key, Choice(values).want, codec["type"], codec["params"][key]))


def _rule_heatmap_loss(cfg):
    """A logistic heatmap loss trains logits: the decoder must apply the sigmoid, and vice versa."""
    activation = cfg["codec"]["params"].get("heatmap_activation")
    if (cfg["loss"]["heatmap_loss"] == "bce") != (activation == "sigmoid"):
        raise ConfigError("loss.heatmap_loss=%s needs codec.params.heatmap_activation=%s (got %r)"
                          % (cfg["loss"]["heatmap_loss"],
                             "sigmoid" if cfg["loss"]["heatmap_loss"] == "bce" else "null", activation))


def _rule_flip_fusion(cfg):
    """``test.flip_fusion: votes`` needs the heatmap + offset codec with Hough decoding."""
    codec = cfg["codec"]
    decoder = codec["params"].get("decoder", "hough")
    if cfg["test"]["flip_fusion"] == "votes" and (codec["type"] != "heatmap_offset" or decoder != "hough"):
        raise ConfigError("test.flip_fusion 'votes' adds Hough vote maps: it needs codec.type "
                          "heatmap_offset with codec.params.decoder hough (got %s, decoder %s); "
                          "use maps or coords" % (codec["type"], decoder))


def _rule_model(cfg):
    """model.name names a model; stage options only for multi-stage models; OHKM's k <= joints;
    the head's layout is the codec's."""
    from .models.zoo import is_multi_stage
    model = cfg["model"]
    if not is_multi_stage(model["name"]) and (model["stage_input"], model["cross_stage"]) != (
            "features", "identity"):
        raise ConfigError("model.stage_input / model.cross_stage apply to mshrnet_* models; %s is "
                          "single-stage" % model["name"])
    if cfg["loss"]["ohkm_topk"] > model["num_joints"]:
        raise ConfigError("loss.ohkm_topk must be at most model.num_joints (%d), got %d"
                          % (model["num_joints"], cfg["loss"]["ohkm_topk"]))
    from .codecs.builder import codec_types
    layout = codec_types()[cfg["codec"]["type"]].layout
    if model["head"] != layout:
        raise ConfigError("model.head %s does not output what codec.type %s decodes (its layout is "
                          "%s: set model.head %s)" % (model["head"], cfg["codec"]["type"], layout, layout))


def _rule_schedule(cfg):
    """train.lr_steps increasing."""
    steps = list(cfg["train"]["lr_steps"])
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ConfigError("train.lr_steps must be increasing, got %s" % steps)


#: Checks relating several keys, run after :func:`_checks`' table.
RULES = (_rule_codec, _rule_heatmap_loss, _rule_flip_fusion, _rule_model, _rule_schedule)


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


def load_yaml_config(path=None, defaults=None, types=None, overrides=(), checks=None):
    """``defaults`` <- YAML file (with its bases) <- ``overrides``, every key and value checked
    against ``defaults`` (and ``types``: see :data:`TYPES`), then every entry of ``checks``
    (``"section.key"`` -> checker, see :func:`check_table`); returns a plain dict.
    :func:`load_config` with other defaults, for other YAML files (ensembles)."""
    cfg = copy.deepcopy(defaults)
    if path:
        _merge(cfg, read_yaml(path), defaults, types=types)
    for text in overrides:
        keys, value = parse_override(text)
        update = value
        for k in reversed(keys):
            update = {k: update}
        _merge(cfg, update, defaults, types=types)
    check_table(cfg, checks or {})
    return cfg


def load_config(path=None, overrides=()):
    """Defaults <- YAML file (with its bases) <- ``overrides``; every value checked (the table of
    :func:`_checks`, then :data:`RULES`) before anything is read; returns a frozen :class:`Config`."""
    checks = _checks()
    # keys with a range or choice checker get their type checked there, with what they must be
    types = dict(TYPES, **{key: "any" for key in checks})
    cfg = load_yaml_config(path, DEFAULTS, types, overrides, checks=checks)
    for rule in RULES:
        rule(cfg)
    return _freeze(cfg)


def dump_config(cfg, path):
    """Write ``cfg`` as YAML (atomically: temp file + rename, see :mod:`gluonpose.utils.io`)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(_thaw(cfg), f, sort_keys=False)
    atomic_write(path, write)
