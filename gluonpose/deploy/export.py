"""Deployment export: hybridized symbol + params (``HybridBlock.export``) and ONNX (``mxnet.onnx``).

Files for prefix ``P`` (epoch 0): ``P-symbol.json`` + ``P-0000.params`` (load them back with
:func:`load_exported`, i.e. ``gluon.SymbolBlock.imports``) and ``P.onnx``.

The symbol has one input named ``data`` of shape (B, 3, h, w) (RGB, ImageNet-normalised crops,
the pipeline's ``sample['image']``). Multi-stage nets return one (B, C, H, W) output per stage;
``stages='last'`` keeps only the last (the one the codecs decode), ``'all'`` keeps all of them.
ONNX outputs are renamed ``output`` (one output) or ``output_stage1 ... output_stageS``.
"""
import os
import warnings
from typing import NamedTuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import MissingDependencyError, MissingFileError, UserError

STAGE_CHOICES = ("all", "last")


class StageOutputs(gluon.HybridBlock):
    """Wraps a pose net: ``stages='all'`` returns every stage output, ``'last'`` only the last."""

    def __init__(self, net, stages="all", **kwargs):
        super().__init__(**kwargs)
        if stages not in STAGE_CHOICES:
            raise ValueError("stages must be one of %s, got %r" % (STAGE_CHOICES, stages))
        self.stages = stages
        with self.name_scope():
            self.net = net

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        out = self.net(x)
        if isinstance(out, (list, tuple)):
            return out[-1] if self.stages == "last" or len(out) == 1 else list(out)
        return out


class ExportedFiles(NamedTuple):
    """What :func:`export_symbol` wrote: file paths and the number of outputs of the symbol."""

    symbol: str
    params: str
    num_outputs: int
    input_shape: tuple


def export_symbol(net, prefix, input_size_wh, *, batch=1, stages="all", epoch=0, ctx=None):
    """Hybridize ``net``, run it once on zeros and write ``prefix-symbol.json`` / ``-%04d.params``.

    Args:
        net: an initialised pose net (parameters on ``ctx``).
        prefix: output path prefix (its folder is created).
        input_size_wh: network input (w, h); batch: batch size of the trace run.
        stages: ``'all'`` or ``'last'`` (see the module docstring).

    Returns:
        :class:`ExportedFiles`.
    """
    ctx = ctx or mx.cpu()
    w, h = int(input_size_wh[0]), int(input_size_wh[1])
    block = StageOutputs(net, stages)
    block.hybridize()
    shape = (int(batch), 3, h, w)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with warnings.catch_warnings():
        # 'last' leaves earlier heads unused, and export cannot infer the input's type: both benign
        warnings.filterwarnings("ignore", message=".*(not used by any computation|Cannot decide type)")
        out = block(mx.nd.zeros(shape, ctx=ctx))
        block.export(prefix, epoch=epoch)
    num = len(out) if isinstance(out, (list, tuple)) else 1
    return ExportedFiles("%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch), num, shape)


def load_exported(prefix, epoch=0, ctx=None):
    """``gluon.SymbolBlock`` from ``prefix-symbol.json`` + ``prefix-%04d.params`` (input ``data``)."""
    sym, params = "%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch)
    for path in (sym, params):
        if not os.path.isfile(path):
            raise MissingFileError("exported model file not found: %s" % path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Cannot decide type")
        return gluon.SymbolBlock.imports(sym, ["data"], params, ctx=ctx or mx.cpu())


class OnnxExportError(UserError, RuntimeError):
    """``mxnet.onnx`` could not convert the symbol (the message names the operator when known)."""


def _require_onnx():
    try:
        import onnx  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise MissingDependencyError("ONNX export needs the 'onnx' package (onnx<1.16: mxnet.onnx 1.9 uses "
                                     "onnx.mapping): pip install -e '.[onnx]'") from err
    return onnx


def output_names(num_outputs):
    """``['output']`` or ``['output_stage1', ..., 'output_stageS']``."""
    if num_outputs == 1:
        return ["output"]
    return ["output_stage%d" % (i + 1) for i in range(num_outputs)]


def _tidy_graph(model, names):
    """Drop initializers from the graph inputs (only ``data`` stays an input) and rename outputs."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    keep = [i for i in graph.input if i.name not in inits]
    del graph.input[:]
    graph.input.extend(keep)
    rename = {o.name: new for o, new in zip(graph.output, names)}
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in rename:
                node.output[i] = rename[name]
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for out in graph.output:
        out.name = rename.get(out.name, out.name)
    return model


def export_onnx(exported, onnx_path, dynamic_batch=False):
    """Convert an :func:`export_symbol` result to ONNX with ``mx.onnx.export_model``.

    Args:
        exported: :class:`ExportedFiles`.
        onnx_path: file to write.
        dynamic_batch: leave the batch dimension free (``None``) instead of ``exported.input_shape[0]``.

    Returns:
        ``onnx_path``. Raises :class:`OnnxExportError` naming the failing operator.
    """
    onnx = _require_onnx()
    from mxnet import onnx as mx_onnx  # pylint: disable=import-outside-toplevel

    shape = tuple(exported.input_shape)
    kwargs = {}
    if dynamic_batch:
        kwargs = {"dynamic": True, "dynamic_input_shapes": [(None,) + shape[1:]]}
    folder = os.path.dirname(os.path.abspath(onnx_path))
    os.makedirs(folder, exist_ok=True)
    try:
        mx_onnx.export_model(exported.symbol, exported.params, [shape], [np.float32], onnx_path,
                             **kwargs)
    except (AttributeError, NotImplementedError, KeyError, ValueError, TypeError) as err:
        raise OnnxExportError("mxnet.onnx could not export %s: %s: %s (an operator of the model has "
                              "no ONNX conversion; the model must use a supported one)"
                              % (exported.symbol, type(err).__name__, err)) from err
    model = _tidy_graph(onnx.load(onnx_path), output_names(exported.num_outputs))
    onnx.checker.check_model(model)
    onnx.save(model, onnx_path)
    return onnx_path


def run_onnx(onnx_path, data):
    """Run an ONNX model in onnxruntime (CPU). ``data``: (B, 3, h, w) float32. Returns a list of
    outputs in graph order."""
    try:
        import onnxruntime as ort  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise MissingDependencyError("running ONNX models needs onnxruntime: "
                                     "pip install -e '.[onnx]'") from err
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(data, np.float32)})


def mxnet_outputs(block, data, ctx=None):
    """Outputs of a (Symbol)Block on numpy ``data`` as a list of numpy arrays."""
    out = block(mx.nd.array(data, ctx=ctx or mx.cpu()))
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [o.asnumpy() for o in outs]


def max_abs_difference(outputs_a, outputs_b):
    """Largest absolute difference over two equally long lists of same-shape arrays."""
    if len(outputs_a) != len(outputs_b):
        raise ValueError("different numbers of outputs: %d vs %d" % (len(outputs_a), len(outputs_b)))
    worst = 0.0
    for a, b in zip(outputs_a, outputs_b):
        if a.shape != b.shape:
            raise ValueError("output shapes differ: %s vs %s" % (a.shape, b.shape))
        worst = max(worst, float(np.abs(np.asarray(a, np.float64) - b).max()))
    return worst
