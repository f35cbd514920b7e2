"""Load official HRNet checkpoints (PyTorch state_dicts) into gluonpose networks by a plain name map.

Name rules (official PyTorch -> gluonpose structural names):
    * strip a leading ``module.`` (DataParallel dumps); drop ``num_batches_tracked``;
    * BatchNorm ``weight``/``bias`` -> ``gamma``/``beta`` (``running_mean``/``running_var`` unchanged);
    * every other name is identical (the Gluon blocks use the official attribute names);
    * multi-stage nets: stage s lives under ``stages.{s}.`` and can be filled from one checkpoint.

``kind='imagenet'`` (classification HRNet, ``HRNet-Image-Classification``) skips the
classification-only keys (``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``);
its multi-scale last stage-4 module fills the multi-scale module of non-final stages.
``kind='pose'`` loads an official pose checkpoint (``final_layer`` included).
"""
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict

import mxnet as mx
import numpy as np

LOG = logging.getLogger(__name__)

IMAGENET_ONLY_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
KINDS = ("pose", "imagenet")
#: Per-stage parameters that are not HRNet backbone (no ImageNet checkpoint holds them): the pose head
#: and the Multi-Stage HRNet cross-stage adapters.
NON_BACKBONE_PREFIXES = ("final_layer.", "cross_conv.", "skip_adapters.")


from ..errors import CheckpointError, MissingDependencyError, MissingFileError


def error_reason(err):
    """The informative line of an exception: MXNet's ``MXNetError: Check failed: ...`` line (its
    message starts with a C++ traceback), else the first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("MXNetError:"):
            return line[len("MXNetError:"):].strip()
    return lines[0] if lines else type(err).__name__


def read_params_file(path, what="weights"):
    """``mx.nd.load`` of a gluonpose/MXNet ``.params`` file as {name: NDArray} (``arg:``/``aux:``
    prefixes dropped); :class:`CheckpointError` naming the file when it is truncated or not such a file."""
    if not os.path.isfile(path):
        raise MissingFileError("%s file not found: %s" % (what, path))
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise CheckpointError("%s file %s cannot be read (truncated, corrupt or not an MXNet .params "
                              "file): %s" % (what, path, error_reason(err))) from None
    if not isinstance(loaded, dict):
        raise CheckpointError("%s file %s holds an unnamed array list, not the named parameters of a "
                              "network (save it with net.save_parameters)" % (what, path))
    return {k.split(":", 1)[-1]: v for k, v in loaded.items()}


def check_params_fit(net, arrays, path, what="weights", model=""):
    """:class:`CheckpointError` unless ``arrays`` ({structural name: array}) holds exactly the parameters
    of ``net`` with their shapes; the message names the first mismatching parameter and both shapes
    (unknown, deferred dimensions of the network count as matching)."""
    params = net._collect_params_with_prefix()  # pylint: disable=protected-access
    about = "%s %s do not fit %s" % (what, path, model or "the network")
    for name, param in params.items():
        if name not in arrays:
            continue
        have, want = tuple(arrays[name].shape), tuple(param.shape)
        if len(have) != len(want) or any(w and h != w for h, w in zip(have, want)):
            raise CheckpointError("%s: parameter %s has shape %s in the file but %s in the network"
                                  % (about, name, have, want))
    missing = [n for n in params if n not in arrays]
    extra = [n for n in arrays if n not in params]
    if missing or extra:
        parts = []
        if missing:
            parts.append("%d network parameter(s) are not in the file, first %s" % (len(missing), missing[0]))
        if extra:
            parts.append("%d array(s) of the file are not in the network, first %s" % (len(extra), extra[0]))
        raise CheckpointError("%s: %s (another architecture, head or number of joints?)"
                              % (about, "; ".join(parts)))


def load_params_checked(net, path, ctx=None, what="weights", model=""):
    """``net.load_parameters(path)`` with user-facing errors: a missing file is a
    :class:`MissingFileError`, a truncated/corrupt file or one that does not fit ``net`` a
    :class:`CheckpointError` naming the file (and the first mismatching parameter with both shapes)."""
    arrays = read_params_file(path, what)
    if any("." in k for k in arrays):  # structural names (save_parameters); legacy files: Gluon checks
        check_params_fit(net, arrays, path, what, model)
    try:
        net.load_parameters(path, ctx=ctx)
    except (AssertionError, mx.base.MXNetError) as err:  # anything the check above did not foresee
        raise CheckpointError("%s %s do not fit %s: %s"
                              % (what, path, model or "the network", error_reason(err))) from None


def read_state_dict(path):
    """Read a checkpoint into an ordered {name: float32 numpy array}.

    ``.npz``: arrays named ``<key>`` or ``param:<key>`` (other arrays are ignored when ``param:``
    keys exist); ``.pth``/``.pt``: a PyTorch state_dict (needs ``torch``: ``pip install .[torch]``),
    optionally wrapped in ``{"state_dict": ...}``; ``.params``: an MXNet ndarray file.
    """
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint not found: %s" % path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.keys())
                if any(k.startswith("param:") for k in keys):
                    return OrderedDict((k[len("param:"):], data[k]) for k in keys if k.startswith("param:"))
                return OrderedDict((k, data[k]) for k in keys)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
            raise CheckpointError("checkpoint %s cannot be read (truncated or not a numpy .npz): %s"
                                  % (path, err)) from None
    if ext in (".pth", ".pt", ".tar"):
        try:
            import torch
        except ImportError as err:
            raise MissingDependencyError("reading %s needs PyTorch (pip install -e '.[torch]'), or "
                                         "convert it to .npz elsewhere with numpy.savez(**state_dict)"
                                         % path) from err
        try:
            obj = torch.load(path, map_location="cpu")
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
                zipfile.BadZipFile) as err:  # what torch raises for a truncated or foreign file
            raise CheckpointError("checkpoint %s cannot be read by torch.load (truncated or not a "
                                  "PyTorch file): %s" % (path, error_reason(err))) from None
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise CheckpointError("%s does not hold a state_dict (got %s)" % (path, type(obj).__name__))
        return OrderedDict((k, v.detach().cpu().numpy()) for k, v in obj.items() if hasattr(v, "numpy"))
    if ext == ".params":
        return OrderedDict((k, v.asnumpy()) for k, v in read_params_file(path, "checkpoint").items())
    raise CheckpointError("unsupported checkpoint type %r for %s (use .pth, .npz or .params)" % (ext, path))


def official_to_gluon(key, target_names):
    """Map one official key onto a gluonpose structural name (None if it has no counterpart)."""
    if key.startswith("module."):
        key = key[len("module."):]
    if key.endswith("num_batches_tracked"):
        return None
    if key in target_names:
        return key
    for src, dst in ((".weight", ".gamma"), (".bias", ".beta")):
        if key.endswith(src) and key[:-len(src)] + dst in target_names:
            return key[:-len(src)] + dst
    return key  # reported as unexpected by the caller


def stage_prefixes(net):
    """Structural prefixes of the HRNet stages of ``net`` ('' for a single-stage PoseHRNet)."""
    stages = getattr(net, "stages", None)
    if stages is None:
        return [""]
    return ["stages.%d." % s for s in range(len(stages))]


def load_official(net, src, kind="pose", stages=None, exclude=(), allow_missing=True):
    """Copy an official checkpoint into ``net`` (already initialised) and report what happened.

    Args:
        net: a PoseHRNet or MultiStageHRNet whose parameters are initialised.
        src: path (.pth/.npz/.params) or an already read {name: array} dict.
        kind: ``pose`` or ``imagenet`` (skip the classification-only keys).
        stages: indices of the stages to fill (default: all).
        exclude: regular expressions of official keys to skip on purpose.
        allow_missing: if False, any network parameter left unloaded is an error.

    Returns:
        dict with sorted lists ``loaded`` (gluonpose names), ``skipped`` (official keys not used, with
        the reason), ``missing`` (gluonpose names not filled), and ``stages``: per HRNet stage of the
        net, ``{stage, loaded, params, missing_backbone, missing_other}`` (``missing_other``: head
        and cross-stage adapters, which no ImageNet checkpoint holds).

    Raises:
        CheckpointError: shape mismatches (naming every offending key), a checkpoint that matches
        nothing, or missing keys with ``allow_missing=False``.
    """
    if kind not in KINDS:
        raise ValueError("kind %r; valid: %s" % (kind, ", ".join(KINDS)))
    state = read_state_dict(src) if isinstance(src, str) else src
    params = net._collect_params_with_prefix()
    prefixes = stage_prefixes(net)
    chosen = range(len(prefixes)) if stages is None else stages
    loaded, skipped = _match_state(state, params, prefixes, chosen, kind,
                                   [re.compile(p) for p in exclude])
    for full, value in loaded.items():
        params[full].set_data(mx.nd.array(value, dtype=params[full].dtype))
    missing = sorted(n for n in params if n not in loaded)
    if missing and not allow_missing:
        raise CheckpointError("%d network parameter(s) not in the checkpoint: %s"
                              % (len(missing), ", ".join(missing[:20])))
    report = {"loaded": sorted(loaded), "skipped": sorted(skipped), "missing": missing,
              "stages": _per_stage(params, prefixes, loaded, missing)}
    LOG.info("loaded %d arrays, skipped %d checkpoint keys, %d network arrays not in the checkpoint",
             len(loaded), len(skipped), len(missing))
    return report


def _match_state(state, params, prefixes, chosen, kind, patterns):
    """``({gluonpose name: array}, [(official key, why skipped)])`` of an official state dict;
    CheckpointError for shape mismatches (every one named) or when nothing matches."""
    loaded, skipped, mismatched = {}, [], []
    stage_names = {s: {n[len(prefixes[s]):] for n in params if n.startswith(prefixes[s])}
                   for s in chosen}
    for key, value in state.items():
        bare = key[len("module."):] if key.startswith("module.") else key
        if bare.endswith("num_batches_tracked"):
            continue
        if kind == "imagenet" and bare.startswith(IMAGENET_ONLY_PREFIXES):
            skipped.append((key, "classification-only"))
            continue
        if any(p.search(bare) for p in patterns):
            skipped.append((key, "excluded"))
            continue
        hit = False
        for s in chosen:
            name = official_to_gluon(bare, stage_names[s])
            full = prefixes[s] + name if name else None
            if full not in params:
                continue
            hit = True
            if tuple(params[full].shape) != tuple(value.shape):
                mismatched.append("%s %s -> %s %s" % (key, tuple(value.shape), full, params[full].shape))
                continue
            loaded[full] = value
        if not hit:
            skipped.append((key, "no counterpart in this network"))
    if mismatched:
        more = "\n  ... (%d more)" % (len(mismatched) - 10) if len(mismatched) > 10 else ""
        raise CheckpointError("shape mismatch for %d key(s) (checkpoint -> network):\n  %s%s\nIs the "
                              "checkpoint of another width/architecture (--arch) or head?"
                              % (len(mismatched), "\n  ".join(mismatched[:10]), more))
    if not loaded:
        raise CheckpointError("no key of the checkpoint matches the network: wrong file or kind? "
                              "first keys: %s" % ", ".join(list(state)[:5]))
    return loaded, skipped


def _per_stage(params, prefixes, loaded, missing):
    """Per stage: arrays loaded, backbone arrays missing (left at their initial values: a stage the
    checkpoint did not fill) and other arrays missing (head, cross-stage adapters)."""
    rows = []
    for s, prefix in enumerate(prefixes):
        mine = lambda names: [n for n in names if n.startswith(prefix)]  # noqa: E731
        miss = mine(missing)
        other = [n for n in miss if n[len(prefix):].startswith(NON_BACKBONE_PREFIXES)]
        rows.append({"stage": s, "loaded": len(mine(loaded)), "params": len(mine(params)),
                     "missing_backbone": sorted(set(miss) - set(other)),
                     "missing_other": sorted(other)})
    return rows


def format_report(report, max_list=10):
    """Human-readable summary of a :func:`load_official` report."""
    lines = ["loaded:  %d arrays" % len(report["loaded"]),
             "skipped: %d checkpoint keys" % len(report["skipped"])]
    reasons = {}
    for key, why in report["skipped"]:
        reasons.setdefault(why, []).append(key)
    for why, keys in sorted(reasons.items()):
        lines.append("  %-32s %5d  e.g. %s" % (why, len(keys), ", ".join(keys[:3])))
    lines.append("missing: %d network arrays keep their initial values" % len(report["missing"]))
    for name in report["missing"][:max_list]:
        lines.append("  " + name)
    if len(report["missing"]) > max_list:
        lines.append("  ... (%d more)" % (len(report["missing"]) - max_list))
    for row in report.get("stages", ()):
        lines.append("stage %d: %d of %d arrays loaded, %d backbone arrays missing, %d head/adapter "
                     "arrays missing" % (row["stage"], row["loaded"], row["params"],
                                         len(row["missing_backbone"]), len(row["missing_other"])))
    return "\n".join(lines)
