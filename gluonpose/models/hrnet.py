"""HRNet pose network (official ``pose_hrnet.py`` topology) for any width C, as Gluon HybridBlocks.

Topology (C = width): stem (two 3x3 stride-2 conv-BN-ReLU, 64 channels) -> ``layer1`` (4 Bottlenecks,
256 channels) -> ``transition1`` -> ``stage2`` (1 module, branches [C, 2C]) -> ``transition2`` ->
``stage3`` (4 modules, [C, 2C, 4C]) -> ``transition3`` -> ``stage4`` (3 modules, [C, 2C, 4C, 8C]) ->
``final_layer`` (1x1 conv with bias on the 1/4-resolution branch). Every module has 4 BasicBlocks per
branch. The last stage-4 module fuses to the high-resolution branch only unless
``multi_scale_last=True`` (as in the ImageNet classification HRNet).
"""
from mxnet.gluon import nn

from .blocks import (BLOCKS, BlockList, Bottleneck, batch_norm, conv1x1, conv3x3,
                     conv_bn, make_layer, sequential)


class Upsample(nn.HybridBlock):
    """Nearest-neighbour upsampling by an integer factor (``nn.Upsample(mode='nearest')``)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self._scale = scale

    def hybrid_forward(self, F, x):
        return F.UpSampling(x, scale=self._scale, sample_type="nearest")


def stage_specs(width, num_blocks=4):
    """The HRNet stage table for width C: (num_modules, channels per branch) of stages 2, 3, 4."""
    c = width
    return [(1, [c, 2 * c]), (4, [c, 2 * c, 4 * c]), (3, [c, 2 * c, 4 * c, 8 * c])]


class HRModule(nn.HybridBlock):
    """One high-resolution module: parallel branches of residual units, then exchange (fuse).

    ``forward(*xs)`` takes one (N, C_b, H_b, W_b) tensor per branch and returns a list with one fused
    tensor per output branch: ``y_i = ReLU(sum_j f_ij(x_j))`` (all branches when ``multi_scale``,
    else the first only).
    """

    def __init__(self, channels, num_blocks=4, block="BASIC", multi_scale=True, **kwargs):
        super().__init__(**kwargs)
        block_cls = BLOCKS[block]
        self.num_branches = len(channels)
        self.multi_scale = multi_scale
        self.branches = BlockList([make_layer(block_cls, c * block_cls.expansion, c, num_blocks)
                                   for c in channels])
        self.out_channels = [c * block_cls.expansion for c in channels]
        if self.num_branches > 1:
            n_out = self.num_branches if multi_scale else 1
            self.fuse_layers = BlockList([BlockList([self._fuse(i, j) for j in range(self.num_branches)])
                                          for i in range(n_out)])
        else:
            self.fuse_layers = None

    def _fuse(self, i, j):
        ch = self.out_channels
        if j > i:  # lower resolution -> 1x1 conv at low resolution, BN, nearest upsample
            return sequential(conv1x1(ch[j], ch[i]), batch_norm(ch[i]), Upsample(2 ** (j - i)))
        if j < i:  # higher resolution -> chain of stride-2 3x3 convs, ReLU except after the last
            steps = [conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
            steps.append(conv_bn(ch[j], ch[i], 3, 2, relu=False))
            return sequential(*steps)
        return None

    def hybrid_forward(self, F, *xs):
        xs = [self.branches[b](x) for b, x in enumerate(xs)]
        if self.fuse_layers is None:
            return xs
        outs = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            outs.append(F.Activation(y, act_type="relu"))
        return outs


def _transition(pre_channels, cur_channels):
    """Official ``_make_transition_layer``: adapt existing branches, create new stride-2 branches."""
    layers = []
    for i, cur in enumerate(cur_channels):
        if i < len(pre_channels):
            pre = pre_channels[i]
            layers.append(conv_bn(pre, cur, 3, 1) if pre != cur else None)
        else:
            n_new = i + 1 - len(pre_channels)
            chain = []
            for k in range(n_new):
                cin = pre_channels[-1]
                cout = cur if k == n_new - 1 else cin
                chain.append(conv_bn(cin, cout, 3, 2))
            layers.append(sequential(*chain))
    return BlockList(layers)


class HRNetBackbone(nn.HybridBlock):
    """The HRNet trunk with official attribute names; used by :class:`MultiStageHRNet` stage nets.

    Args:
        width: C, channels of the high-resolution branch (8, 32, 48, ...).
        stem: build the image stem (``conv1``/``bn1``/``conv2``/``bn2``). Without it the trunk starts at
            ``layer1`` and takes a (N, 64, H/4, W/4) feature map.
        multi_scale_last: whether the last stage-4 module outputs all four branches.
    """

    def __init__(self, width=32, stem=True, multi_scale_last=False, num_blocks=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.has_stem = stem
        if stem:
            self.conv1 = conv3x3(3, 64, stride=2)
            self.bn1 = batch_norm(64)
            self.conv2 = conv3x3(64, 64, stride=2)
            self.bn2 = batch_norm(64)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)
        pre = [256]
        specs = stage_specs(width, num_blocks)
        for s, (num_modules, channels) in enumerate(specs, start=2):
            setattr(self, "transition%d" % (s - 1), _transition(pre, channels))
            modules = []
            for m in range(num_modules):
                last = s == 4 and m == num_modules - 1
                modules.append(HRModule(channels, num_blocks, "BASIC",
                                        multi_scale=multi_scale_last or not last))
            setattr(self, "stage%d" % s, sequential(*modules))
            pre = channels
        self.out_channels = specs[-1][1]
        self.module_positions = [(s, m) for s, (n, _) in enumerate(specs, start=2) for m in range(n)]

    def stem(self, F, x):
        """(N, 3, H, W) image -> (N, 64, H/4, W/4)."""
        x = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        return F.Activation(self.bn2(self.conv2(x)), act_type="relu")

    def run(self, F, x, skips=None, skip_adapter=None):
        """Run the trunk from ``layer1`` on.

        Args:
            x: (N, 64, H/4, W/4) stem output (or cross-stage input features).
            skips: optional list, one entry per HR module (in order stage2.0, stage3.0..3, stage4.0..2),
                of the previous stage's module outputs; entry ``[b]`` is added to branch ``b`` of the
                same module's output before the next module consumes it.
            skip_adapter: optional callable ``(module_index, branch, tensor) -> tensor`` applied to
                each skip before the addition.

        Returns:
            (final branch outputs, list of every module's output list after the additions).
        """
        x = self.layer1(x)
        ys = [x]
        module_outputs = []
        for s in (2, 3, 4):
            transition = getattr(self, "transition%d" % (s - 1))
            xs = []
            for i, t in enumerate(transition):
                if t is None:
                    xs.append(ys[i])
                else:
                    xs.append(t(ys[-1] if i >= len(ys) else ys[i]))
            for module in getattr(self, "stage%d" % s):
                ys = module(*xs)
                if skips is not None:
                    k = len(module_outputs)
                    ys = [y + (skip_adapter(k, b, skips[k][b]) if skip_adapter else skips[k][b])
                          for b, y in enumerate(ys)]
                module_outputs.append(ys)
                xs = ys
        return ys, module_outputs

    def hybrid_forward(self, F, x):
        """(N, 3, H, W) -> list of the last module's branch outputs."""
        if self.has_stem:
            x = self.stem(F, x)
        return self.run(F, x)[0]
