"""Build a network from the ``model`` config section (plain keyword arguments), or a network and its
codec from a whole config with trained weights (:func:`build_net_from_config`)."""
import logging
import warnings

import mxnet as mx

from ..codecs.builder import build_codec_from_config
from ..errors import ConfigError, MissingFileError
from .multistage import MultiStageHRNet
from .weights import format_report, load_official, load_params_checked
from .zoo import get_model, parse_model_name

LOG = logging.getLogger(__name__)


def build_model(name, *, num_joints=17, head="heatmap_offset", stage_input="features",
                cross_stage="identity", final_conv_kernel=1, pretrained="", pretrained_kind="imagenet",
                ctx=None):
    """``get_model(name, ...)`` plus optional official (ImageNet) initialisation of every stage.

    Returns the initialised network (not hybridized).
    """
    cls, _ = parse_model_name(name)
    kwargs = {"num_joints": num_joints, "head": head, "final_conv_kernel": final_conv_kernel}
    if cls is MultiStageHRNet:
        kwargs.update(stage_input=stage_input, cross_stage=cross_stage)
    elif (stage_input, cross_stage) != ("features", "identity"):
        raise ConfigError("%s is single-stage: stage_input/cross_stage apply to mshrnet_* models" % name)
    net = get_model(name, ctx=ctx, **kwargs)
    if pretrained and pretrained.endswith(".params"):  # a gluonpose file of this architecture
        load_params_checked(net, pretrained, ctx=ctx or mx.cpu(), what="model.pretrained",
                            model="model %s (head %s, %d joints)" % (name, head, num_joints))
        LOG.info("initialised from %s", pretrained)
    elif pretrained:
        report = load_official(net, pretrained, kind=pretrained_kind)
        LOG.info("initialised from %s (%s):\n%s", pretrained, pretrained_kind, format_report(report))
    return net


def quiet_unconsumed_warning():
    """Silence Gluon's "Parameter ... is not used by any computation" for hybridized multi-stage nets:
    those are the frozen fuse layers of :meth:`MultiStageHRNet.unconsumed_parameters`, by design."""
    warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation")


def build_net_from_config(cfg, weights, ctx_list):
    """(net, codec) of a config, with gluonpose ``.params`` weights loaded (``model.pretrained``
    is ignored: the weights replace it)."""
    if not weights:
        raise MissingFileError("no weights file given (--weights)")
    model_kw = dict(cfg.model, pretrained="")
    quiet_unconsumed_warning()
    net = build_model(ctx=ctx_list, **model_kw)
    load_params_checked(net, weights, ctx=ctx_list, what="weights",
                        model="model %s (head %s, %d joints)"
                        % (cfg.model.name, cfg.model.head, cfg.model.num_joints))
    return net, build_codec_from_config(cfg.codec, cfg.model.num_joints)
