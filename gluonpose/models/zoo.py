"""GluonCV-style model zoo: ``get_model(name, **kwargs)``.

Names:
    ``hrnet_w{C}``                 single-stage pose HRNet of width C (default head ``heatmap``, K=17)
    ``mshrnet_w{C}_{N}stage``      Multi-Stage HRNet, N cascaded HRNet-W{C} (default head
                                   ``heatmap_offset``); e.g. ``mshrnet_w48_2stage``
Keyword arguments override the constructor's (``num_joints``, ``head``, ``stage_input`` ...).
"""
import re

import mxnet as mx

from ..errors import ConfigError
from .multistage import MultiStageHRNet, PoseHRNet

_PATTERNS = (
    (re.compile(r"^hrnet_w(\d+)$"), PoseHRNet, lambda m: {"width": int(m.group(1))}),
    (re.compile(r"^mshrnet_w(\d+)_(\d+)stage$"), MultiStageHRNet,
     lambda m: {"width": int(m.group(1)), "num_stages": int(m.group(2))}),
)

#: Names of the configurations the report and the official HRNet use (any width / stage count works).
MODEL_NAMES = ("hrnet_w32", "hrnet_w48", "mshrnet_w32_1stage", "mshrnet_w48_1stage",
               "mshrnet_w32_2stage", "mshrnet_w48_2stage", "mshrnet_w48_3stage")


def get_model_list():
    """The canonical model names (any ``hrnet_w{C}`` / ``mshrnet_w{C}_{N}stage`` is accepted too)."""
    return list(MODEL_NAMES)


def parse_model_name(name):
    """``name`` -> (class, constructor kwargs); ValueError listing the valid names otherwise."""
    key = str(name).lower()
    for pattern, cls, to_kwargs in _PATTERNS:
        m = pattern.match(key)
        if m:
            kwargs = to_kwargs(m)
            if kwargs["width"] < 1 or kwargs.get("num_stages", 1) < 1:
                break
            return cls, kwargs
    raise ConfigError("unknown model %r. Valid names: %s, or any hrnet_w{C} / mshrnet_w{C}_{N}stage"
                      % (name, ", ".join(MODEL_NAMES)))


def is_multi_stage(name):
    """Whether ``name`` is a multi-stage model (``mshrnet_*``); ConfigError for an unknown name."""
    cls, _ = parse_model_name(name)
    return cls is MultiStageHRNet


def get_model(name, pretrained=None, ctx=None, initialize=True, **kwargs):
    """Build a model by name, GluonCV style.

    Args:
        name: see the module docstring.
        pretrained: None/False, or a path to a gluonpose ``.params`` file to load. (There is no
            download store: convert official checkpoints with ``scripts/convert_official.py``.)
        ctx: mx.Context or list of them (default CPU).
        initialize: initialise the parameters (official init: conv N(0, 0.001), BN gamma 1 beta 0).
        **kwargs: constructor overrides.
    """
    cls, base = parse_model_name(name)
    base.update(kwargs)
    net = cls(**base)
    ctx = ctx or mx.cpu()
    if pretrained is True:
        raise ConfigError("gluonpose has no download store; pass pretrained=<path to .params>")
    if pretrained:
        from .weights import load_params_checked
        load_params_checked(net, pretrained, ctx=ctx, what="pretrained", model="model %s" % name)
    elif initialize:
        net.initialize(ctx=ctx)
    return net
