"""Residual units and small containers of HRNet, with the official PyTorch attribute names.

Every child is registered under the name it has in the official ``pose_hrnet.py`` / ``cls_hrnet.py``
state_dict (``conv1``, ``bn1``, ``downsample.0`` ...), so an official checkpoint loads by renaming
BatchNorm ``weight/bias`` to ``gamma/beta`` only (see :mod:`gluonpose.models.weights`).
"""
from mxnet import initializer
from mxnet.gluon import nn

BN_MOMENTUM = 0.9  # MXNet convention: running = m * running + (1 - m) * batch; PyTorch's 0.1
BN_EPS = 1e-5
CONV_INIT = initializer.Normal(0.001)  # official init_weights: N(0, 0.001), no bias


def conv3x3(in_channels, out_channels, stride=1):
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2D(out_channels, 3, strides=stride, padding=1, use_bias=False,
                     in_channels=in_channels, weight_initializer=CONV_INIT)


def conv1x1(in_channels, out_channels, stride=1, use_bias=False):
    """1x1 convolution."""
    return nn.Conv2D(out_channels, 1, strides=stride, use_bias=use_bias, in_channels=in_channels,
                     weight_initializer=CONV_INIT)


def batch_norm(channels):
    """BatchNorm with the official statistics (momentum 0.1 in PyTorch terms, eps 1e-5)."""
    return nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPS, in_channels=channels)


class BlockList(nn.HybridBlock):
    """A list of blocks registered as ``"0"``, ``"1"``, ...; ``None`` entries keep their index.

    It mirrors PyTorch's ``nn.ModuleList`` with ``None`` holes (transitions and fuse layers), so the
    structural parameter names equal the official ones.
    """

    def __init__(self, blocks, **kwargs):
        super().__init__(**kwargs)
        self._items = list(blocks)
        for i, block in enumerate(self._items):
            if block is not None:
                self.register_child(block, str(i))

    def __getitem__(self, i):
        return self._items[i]

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    def hybrid_forward(self, F, x):  # pragma: no cover - containers are indexed, never called
        raise NotImplementedError("BlockList is a container; call its items")


def sequential(*blocks):
    """``HybridSequential`` holding ``blocks`` at indices 0, 1, ... (like ``torch.nn.Sequential``)."""
    seq = nn.HybridSequential()
    seq.add(*blocks)
    return seq


def conv_bn(in_channels, out_channels, kernel, stride=1, relu=True):
    """``Sequential(conv, BN[, ReLU])`` as used by transitions and fuse layers (indices 0, 1, 2)."""
    conv = conv3x3(in_channels, out_channels, stride) if kernel == 3 else \
        conv1x1(in_channels, out_channels, stride)
    parts = [conv, batch_norm(out_channels)]
    if relu:
        parts.append(nn.Activation("relu"))
    return sequential(*parts)


class BasicBlock(nn.HybridBlock):
    """Two 3x3 conv-BN layers with identity (or 1x1 projection) shortcut; expansion 1."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, downsample=None, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = batch_norm(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = batch_norm(channels)
        self.downsample = downsample

    def hybrid_forward(self, F, x):
        out = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        out = self.bn2(self.conv2(out))
        residual = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + residual, act_type="relu")


class Bottleneck(nn.HybridBlock):
    """1x1 - 3x3 - 1x1 bottleneck with expansion 4 (HRNet ``layer1``)."""

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, downsample=None, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = batch_norm(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = batch_norm(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = batch_norm(channels * self.expansion)
        self.downsample = downsample

    def hybrid_forward(self, F, x):
        out = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        out = F.Activation(self.bn2(self.conv2(out)), act_type="relu")
        out = self.bn3(self.conv3(out))
        residual = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + residual, act_type="relu")


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_layer(block_cls, in_channels, channels, num_blocks, stride=1):
    """A ``Sequential`` of ``num_blocks`` residual units; the first projects when shapes differ."""
    out_channels = channels * block_cls.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = sequential(conv1x1(in_channels, out_channels, stride), batch_norm(out_channels))
    layers = [block_cls(in_channels, channels, stride, downsample)]
    layers += [block_cls(out_channels, channels) for _ in range(1, num_blocks)]
    return sequential(*layers)
