"""Single- and multi-stage HRNet pose networks.

:class:`PoseHRNet` is the official pose HRNet (backbone + ``final_layer``) with the official parameter
names. :class:`MultiStageHRNet` cascades N of them (Multi-Stage HRNet, COCO 2019 report): the output
list of every HR module of stage s (every branch, after fuse + ReLU) is **added** to the output of the
same module and branch of stage s+1 before the next module consumes it. Non-final stages therefore
build their last stage-4 module multi-scale (as the ImageNet classification HRNet does, so it is
ImageNet-initialisable). Stage s+1 takes stage s's high-resolution output through a 1x1 conv-BN-ReLU
to 64 channels into its ``layer1`` (``stage_input='features'``, MSPN's cross_conv), or the image through
its own stem (``stage_input='image'``). Skips are added as they are (``cross_stage='identity'``) or
through a 1x1 conv-BN-ReLU each (``'conv1x1'``, MSPN style).

Every stage has its own head; the network returns the list of per-stage outputs and holds no loss and
no decoding.
"""
from mxnet.gluon import nn

from ..errors import ConfigError
from .blocks import BlockList, conv_bn
from .heads import make_head
from .hrnet import HRNetBackbone

STAGE_INPUTS = ("features", "image")
CROSS_STAGE = ("identity", "conv1x1")


class PoseHRNet(HRNetBackbone):
    """HRNet pose network: (N, 3, H, W) -> (N, C_out, H/4, W/4), C_out from ``head`` and ``num_joints``.

    Parameter names are the official ``pose_hrnet.py`` ones (BatchNorm ``gamma/beta`` for
    ``weight/bias``).
    """

    def __init__(self, width=32, num_joints=17, head="heatmap", final_conv_kernel=1, stem=True,
                 multi_scale_last=False, **kwargs):
        super().__init__(width=width, stem=stem, multi_scale_last=multi_scale_last, **kwargs)
        self.head = head
        self.num_joints = num_joints
        self.final_layer = make_head(head, width, num_joints, final_conv_kernel)

    def hybrid_forward(self, F, x):
        if self.has_stem:
            x = self.stem(F, x)
        ys, _ = self.run(F, x)
        return self.final_layer(ys[0])


class MultiStageHRNet(nn.HybridBlock):
    """N cascaded HRNets with cross-stage addition of every HR module's outputs.

    Args:
        width: HRNet width C of every stage.
        num_stages: N >= 1.
        num_joints: K.
        head: ``heatmap_offset`` (3K channels) or ``heatmap`` (K).
        stage_input: ``features`` (stage s+1 starts from stage s's high-resolution output through
            ``cross_conv``, no second stem) or ``image`` (each stage has its own stem on the image).
        cross_stage: ``identity`` (literal addition) or ``conv1x1`` (a 1x1 conv-BN-ReLU per skip).

    ``forward(x)`` with x (N, 3, H, W) returns a list of N tensors (N, C_out, H/4, W/4), stage order.
    """

    def __init__(self, width=48, num_stages=2, num_joints=17, head="heatmap_offset",
                 stage_input="features", cross_stage="identity", final_conv_kernel=1, **kwargs):
        super().__init__(**kwargs)
        if num_stages < 1:
            raise ConfigError("num_stages must be >= 1, got %r" % num_stages)
        if stage_input not in STAGE_INPUTS:
            raise ConfigError("stage_input %r; valid: %s" % (stage_input, ", ".join(STAGE_INPUTS)))
        if cross_stage not in CROSS_STAGE:
            raise ConfigError("cross_stage %r; valid: %s" % (cross_stage, ", ".join(CROSS_STAGE)))
        self.num_stages = num_stages
        self.stage_input = stage_input
        self.cross_stage = cross_stage
        self.head = head
        self.num_joints = num_joints
        nets = []
        for s in range(num_stages):
            net = PoseHRNet(width, num_joints, head, final_conv_kernel,
                            stem=(s == 0 or stage_input == "image"),
                            multi_scale_last=(s < num_stages - 1))
            if s > 0 and stage_input == "features":
                net.cross_conv = conv_bn(width, 64, 1, relu=True)
            if s > 0 and cross_stage == "conv1x1":
                net.skip_adapters = BlockList([
                    BlockList([conv_bn(c, c, 1, relu=True) for c in self._module_out_channels(net, k)])
                    for k in range(len(net.module_positions))])
            nets.append(net)
        self.stages = BlockList(nets)
        self._freeze_unconsumed()

    @staticmethod
    def _module_out_channels(net, k):
        """Channels of the outputs of HR module ``k`` of ``net``."""
        stage, m = net.module_positions[k]
        module = getattr(net, "stage%d" % stage)[m]
        n_out = module.num_branches if module.multi_scale else 1
        return module.out_channels[:n_out]

    def _freeze_unconsumed(self):
        """Freeze fuse layers whose outputs nothing consumes.

        The last module of the penultimate stage is multi-scale, but the final stage's last module
        (single-scale, it feeds the head) only takes branch 0 of it; the other three fused outputs
        have no consumer and would get no gradient. Their parameters stay at their (ImageNet)
        initial values with ``grad_req='null'``; they are listed by :meth:`unconsumed_parameters`.
        """
        for p in self.unconsumed_parameters():
            p.grad_req = "null"

    def unconsumed_parameters(self):
        """Parameters whose outputs do not reach any head (see :meth:`_freeze_unconsumed`)."""
        if self.num_stages < 2:
            return []
        last = self.stages[self.num_stages - 2].stage4[len(self.stages[0].stage4) - 1]
        params = []
        for i in range(1, len(last.fuse_layers)):
            params.extend(last.fuse_layers[i].collect_params().values())
        return params

    def _adapter(self, net):
        if self.cross_stage != "conv1x1":
            return None
        return lambda k, b, t: net.skip_adapters[k][b](t)

    def hybrid_forward(self, F, x):
        outputs = []
        skips = None
        feats = None
        for s, net in enumerate(self.stages):
            if net.has_stem:
                inp = net.stem(F, x)
            else:
                inp = net.cross_conv(feats)
            ys, skips = net.run(F, inp, skips, self._adapter(net) if s > 0 else None)
            feats = ys[0]
            outputs.append(net.final_layer(feats))
        return outputs
