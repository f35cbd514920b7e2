"""``build_dataset(type=..., **kwargs)``: one entry point for every dataset reader.

Types:

* ``coco`` / ``crowdpose`` / ``aic`` / ``mpii``: the readers, with their keyword arguments
  (``ann_file``, ``img_prefix``, ``on_bad``, ``check_images``, ``skip_empty``, ...);
* ``coco_style``: any COCO-format json with ``layout=`` one of the keypoint layouts;
* ``synthetic``: generate once (:func:`gluonpose.data.synthetic.generate_synthetic_coco`) into a keyed folder of
  ``out_dir`` and read it back (generator keywords: ``out_dir``, ``num_images``, ``seed``,
  ``image_size_wh``, ...; reader keywords: ``on_bad``, ``skip_empty``, ...);
* ``combined``: ``datasets=[{type: ..., ...}, ...]`` (or already built readers), ``ratios``,
  ``names``, ``seed``, and reader keywords shared by the sub-specs (e.g. ``on_bad``).
"""
import inspect
import os

from ...errors import ConfigError, ConfigTypeError
from .aic import AicKeypoints
from .coco import CocoKeypoints, CocoStyleReader, CrowdPoseKeypoints
from .combined import CombinedDataset
from .mpii import MpiiKeypoints

_READER_KWARGS = ("on_bad", "check_images", "skip_empty", "keypoint_margin")


def _readers():
    return {"coco": CocoKeypoints, "crowdpose": CrowdPoseKeypoints, "aic": AicKeypoints,
            "mpii": MpiiKeypoints, "coco_style": CocoStyleReader}


def dataset_types():
    """The valid ``type`` values of :func:`build_dataset`."""
    return tuple(sorted(_readers())) + ("combined", "synthetic")


def _build_synthetic(**kwargs):
    from ..synthetic import generate_synthetic_coco, synthetic_image_dir

    reader_kwargs = {k: kwargs.pop(k) for k in _READER_KWARGS if k in kwargs}
    params = inspect.signature(generate_synthetic_coco).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ConfigTypeError(f"build_dataset(type='synthetic'): unknown arguments {unknown}; valid: "
                              f"{sorted(set(params) | set(_READER_KWARGS))}")
    json_path = generate_synthetic_coco(**kwargs)
    reader = CocoKeypoints(json_path, synthetic_image_dir(os.path.dirname(json_path)),
                           **reader_kwargs)
    reader.dataset_name = "synthetic"
    for rec in reader.records:
        rec.dataset = "synthetic"
    return reader


def _build_combined(datasets, ratios=None, names=None, seed=0, **common):
    """``common`` reader keywords (e.g. ``on_bad``) apply to every sub-spec that lacks them."""
    unknown = sorted(set(common) - set(_READER_KWARGS))
    if unknown:
        raise ConfigTypeError(f"build_dataset(type='combined'): unknown arguments {unknown}; valid: "
                              f"['datasets', 'ratios', 'names', 'seed'] + {list(_READER_KWARGS)}")
    built = [build_dataset(**{**common, **d}) if isinstance(d, dict) else d for d in datasets]
    return CombinedDataset(built, ratios=ratios, names=names, seed=seed)


def build_dataset(type, **kwargs):  # noqa: A002 - 'type' is the config key
    """Build a dataset from its ``type`` name and keyword arguments (see module docstring).

    Raises:
        ValueError: unknown ``type`` (the message lists the valid ones).
        TypeError: an argument the chosen type does not take.
    """
    readers = _readers()
    if type == "combined":
        return _build_combined(**kwargs)
    if type == "synthetic":
        return _build_synthetic(**kwargs)
    if type not in readers:
        raise ConfigError(f"unknown dataset type {type!r}; valid types: {list(dataset_types())}")
    cls = readers[type]
    valid = ("ann_file", "img_prefix") + _READER_KWARGS
    if issubclass(cls, CocoStyleReader):
        valid += ("dataset",) + (("layout",) if type == "coco_style" else ())
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigTypeError(f"build_dataset(type={type!r}): unknown arguments {unknown}; "
                              f"valid: {list(valid)}")
    if "ann_file" not in kwargs:
        raise ConfigTypeError(f"build_dataset(type={type!r}) needs ann_file=")
    return cls(**kwargs)
