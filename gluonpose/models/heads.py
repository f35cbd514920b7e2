"""Prediction heads: a 1x1 (or kxk) convolution on the high-resolution branch.

``heatmap``: K Gaussian heatmap channels (official HRNet ``final_layer``).
``heatmap_offset``: K heatmaps + 2K offset channels in the blocked layout of
:mod:`gluonpose.codecs.layout`.
"""
from mxnet import initializer
from mxnet.gluon import nn

from ..codecs import layout as output_layout
from .blocks import CONV_INIT


def make_head(head, in_channels, num_joints=17, kernel=1):
    """The ``final_layer`` convolution for output layout ``head`` (bias initialised to 0)."""
    channels = output_layout.num_channels(head, num_joints)
    return nn.Conv2D(channels, kernel, padding=(kernel - 1) // 2, use_bias=True,
                     in_channels=in_channels, weight_initializer=CONV_INIT,
                     bias_initializer=initializer.Zero())
