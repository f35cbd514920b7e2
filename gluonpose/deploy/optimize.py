"""Inference-only deploy graphs: BatchNorm folded into convolutions, oneDNN (MKLDNN) operator fusion, int8 / bf16.

:func:`deploy_block` turns a trained pose net into a ``gluon.SymbolBlock`` whose outputs equal the net's (fp32:
within float32 rounding) and that runs faster on CPU:

1. the net is traced into a symbol (``stages='last'`` keeps only the output the codecs decode);
2. :func:`fold_batchnorm` rewrites every ``Convolution -> BatchNorm`` pair whose convolution feeds only that
   BatchNorm into one convolution with bias (``w' = w * gamma / sqrt(var + eps)``,
   ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``);
3. :func:`partition_for_cpu` asks MXNet's oneDNN subgraph backend to fuse conv + ReLU (+ elementwise sum) into
   ``sg_mkldnn_conv_*`` operators, and the partitioned symbol is bound by parameter *name*.

Why step 3 does not use ``HybridBlock.optimize_for(backend='MKLDNN')``: in MXNet 1.9.1 that call fails on the HRNet
graph (``Error in operator sg_mkldnn_conv_bn_act_N: ... Shape inconsistent, Provided = [64,8,3,3],
inferred shape=(8,8,3,3)``). The partition itself is correct (each fused node holds the right convolution and
weight); the failure is in how ``optimize_for`` hands the parameters to the partitioned graph, which on graphs with
many subgraphs binds a weight to the wrong input. The same partitioned symbol bound by name through
``gluon.SymbolBlock`` (or an executor) gives the net's outputs. The training net and its parameter names, which
official checkpoints load into, are left untouched: only the deploy copy is rewritten.

Reduced precision (:func:`quantize_int8`, :func:`convert_bf16`) starts from the folded fp32 symbol.
"""
import functools
import json
import logging
import warnings

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import UserError

LOG = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16")


class DeployError(UserError):
    """A deploy graph that this MXNet build cannot make (no oneDNN, no bf16 / int8 support)."""


def onednn_available():
    """True when this MXNet build has oneDNN (the pip ``mxnet`` CPU wheels do)."""
    try:
        return bool(mx.runtime.Features().is_enabled("MKLDNN"))
    except Exception:  # pylint: disable=broad-except
        return False


@functools.lru_cache(maxsize=None)
def bf16_available():
    """True when this MXNet build converts and runs a bfloat16 convolution on CPU (probed once on a tiny graph)."""
    try:
        data = mx.sym.var("data")
        conv = mx.sym.Convolution(data, num_filter=2, kernel=(1, 1), name="probe")
        args = {"probe_weight": mx.nd.ones((2, 1, 1, 1)), "probe_bias": mx.nd.zeros((2,))}
        sym, args, aux = convert_bf16(conv, args, {})
        out = bind(sym, args, aux)(mx.nd.full((1, 1, 2, 2), 1.5)).asnumpy()
        return bool(out.dtype == np.float32 and np.allclose(out, 1.5))
    except Exception:  # pylint: disable=broad-except
        return False


def check_deploy_contexts(ctx_list):
    """Deploy graphs are CPU (oneDNN) graphs: refuse GPU contexts with a clear message."""
    ctxs = ctx_list if isinstance(ctx_list, (list, tuple)) else [ctx_list]
    if any(c.device_type != "cpu" for c in ctxs):
        raise DeployError("--deploy builds CPU (oneDNN) graphs; run it with CPU contexts (--gpus '' or cpu:N), "
                          "got %s" % (ctxs,))


def trace(net, input_shape, stages="last", ctx=None):
    """(symbol, arg_params, aux_params) of ``net`` for an input of ``input_shape`` = (N, 3, H, W)."""
    from .export import StageOutputs  # pylint: disable=import-outside-toplevel
    ctx = ctx or mx.cpu()
    block = StageOutputs(net, stages)
    block.hybridize()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(not used by any computation|Cannot decide type)")
        block(mx.nd.zeros(input_shape, ctx=ctx))
        sym = block._cached_graph[1]  # pylint: disable=protected-access
    names = set(sym.list_arguments())
    aux_names = set(sym.list_auxiliary_states())
    args, aux = {}, {}
    for p in block.collect_params().values():
        if p.name in names:
            args[p.name] = p.data(ctx).copyto(mx.cpu())
        elif p.name in aux_names:
            aux[p.name] = p.data(ctx).copyto(mx.cpu())
    data_name = [n for n in sym.list_arguments() if n not in args]
    if len(data_name) != 1:
        raise RuntimeError("expected one data input, found %s" % data_name)
    if data_name[0] != "data":
        sym = _rename_input(sym, data_name[0], "data")
    return sym, args, aux


def _edit_nodes(sym, edit):
    """``sym`` with ``edit(node)`` applied to every node of its json graph (``edit`` returns True when it
    changed the node); ``sym`` itself when nothing changed."""
    graph = json.loads(sym.tojson())
    changed = [bool(edit(node)) for node in graph["nodes"]]
    return mx.sym.load_json(json.dumps(graph)) if any(changed) else sym


def _rename_input(sym, old, new):
    def rename(node):
        if node["op"] == "null" and node["name"] == old:
            node["name"] = new
            return True
        return False
    return _edit_nodes(sym, rename)


def fold_batchnorm(sym, arg_params, aux_params):
    """Fold every BatchNorm that directly follows a single-consumer Convolution into it.

    Returns (symbol, arg_params, aux_params, number folded). Inputs are not modified.
    """
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    consumers = {}
    for node in nodes:
        for entry in node["inputs"]:
            consumers[entry[0]] = consumers.get(entry[0], 0) + 1
    for head in graph["heads"]:
        consumers[head[0]] = consumers.get(head[0], 0) + 1
    args = dict(arg_params)
    replaced = {}
    for i, node in enumerate(nodes):
        if node["op"] != "BatchNorm":
            continue
        src = node["inputs"][0][0]
        conv = nodes[src]
        if conv["op"] != "Convolution" or consumers.get(src, 0) != 1:
            continue
        attrs = node.get("attrs", {})
        eps = float(attrs.get("eps", 1e-3))
        gamma_n, beta_n, mean_n, var_n = (nodes[e[0]]["name"] for e in node["inputs"][1:5])
        beta = args[beta_n].asnumpy().astype(np.float64)
        gamma = (np.ones_like(beta) if attrs.get("fix_gamma", "True") == "True"
                 else args[gamma_n].asnumpy().astype(np.float64))
        mean = aux_params[mean_n].asnumpy().astype(np.float64)
        var = aux_params[var_n].asnumpy().astype(np.float64)
        k = gamma / np.sqrt(var + eps)
        weight_n = nodes[conv["inputs"][1][0]]["name"]
        weight = args[weight_n].asnumpy().astype(np.float64)
        conv_attrs = conv.setdefault("attrs", {})
        if conv_attrs.get("no_bias", "False") in ("True", "1", "true"):
            bias_n = conv["name"] + "_folded_bias"
            nodes.append({"op": "null", "name": bias_n, "inputs": []})
            conv["inputs"].append([len(nodes) - 1, 0, 0])
            conv_attrs["no_bias"] = "False"
            bias = np.zeros(weight.shape[0])
        else:
            bias_n = nodes[conv["inputs"][2][0]]["name"]
            bias = args[bias_n].asnumpy().astype(np.float64)
        shape = (-1,) + (1,) * (weight.ndim - 1)
        args[weight_n] = mx.nd.array((weight * k.reshape(shape)).astype(np.float32))
        args[bias_n] = mx.nd.array(((bias - mean) * k + beta).astype(np.float32))
        for name in (gamma_n, beta_n):
            args.pop(name, None)
        replaced[i] = src
    for node in nodes:
        node["inputs"] = [[replaced[e[0]], 0, e[2]] if e[0] in replaced else e for e in node["inputs"]]
    graph["heads"] = [[replaced[h[0]], 0, h[2]] if h[0] in replaced else h for h in graph["heads"]]
    # re-serialise through the symbol API, which drops the now unreachable BatchNorm nodes
    folded = mx.sym.load_json(json.dumps(_toposort(graph)))
    keep = set(folded.list_arguments())
    keep_aux = set(folded.list_auxiliary_states())
    return (folded, {k: v for k, v in args.items() if k in keep},
            {k: v for k, v in aux_params.items() if k in keep_aux}, len(replaced))


def _toposort(graph):
    """Graph json with nodes in topological order (appended bias variables move before their users)."""
    nodes = graph["nodes"]
    order, seen = [], set()

    def visit(i):
        stack = [(i, False)]
        while stack:
            j, done = stack.pop()
            if done:
                if j not in seen:
                    seen.add(j)
                    order.append(j)
                continue
            if j in seen:
                continue
            stack.append((j, True))
            for e in reversed(nodes[j]["inputs"]):
                if e[0] not in seen:
                    stack.append((e[0], False))

    for h in graph["heads"]:
        visit(h[0])
    index = {old: new for new, old in enumerate(order)}
    new_nodes = []
    for old in order:
        node = dict(nodes[old])
        node["inputs"] = [[index[e[0]], e[1], e[2]] for e in node["inputs"]]
        new_nodes.append(node)
    out = {k: v for k, v in graph.items() if k not in ("nodes", "heads", "arg_nodes", "node_row_ptr")}
    out["nodes"] = new_nodes
    out["heads"] = [[index[h[0]], h[1], h[2]] for h in graph["heads"]]
    out["arg_nodes"] = [i for i, n in enumerate(new_nodes) if n["op"] == "null"]
    return out


def partition_for_cpu(sym):
    """The symbol with oneDNN's fused operators (conv + ReLU + sum); unchanged without oneDNN."""
    if not onednn_available():
        LOG.warning("this MXNet build has no oneDNN: deploy graph not fused")
        return sym
    return sym.get_backend_symbol("MKLDNN")


def bind(sym, arg_params, aux_params, ctx=None):
    """A hybridized ``gluon.SymbolBlock`` (input ``data``) with the parameters set by name."""
    ctx = ctx or mx.cpu()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Cannot decide type")
        block = gluon.SymbolBlock(sym, mx.sym.var("data"))
    params = dict(arg_params)
    params.update(aux_params)
    for name, p in block.collect_params().items():
        if name not in params:
            raise RuntimeError("deploy graph input %r has no value" % name)
        # bf16 graphs keep bf16 weights: the saved dtype wins
        p._load_init(params[name], ctx, cast_dtype=True, dtype_source="saved")  # pylint: disable=protected-access
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def deploy_symbol(net, input_shape, *, precision="fp32", fold=True, fuse=True, stages="last",
                  calib_data=None, ctx=None):
    """(symbol, arg_params, aux_params) of the deploy graph; see :func:`deploy_block`."""
    if precision not in PRECISIONS:
        raise DeployError("precision must be one of %s, got %r" % (PRECISIONS, precision))
    sym, args, aux = trace(net, input_shape, stages=stages, ctx=ctx)
    if fold or precision != "fp32":
        sym, args, aux, n = fold_batchnorm(sym, args, aux)
        LOG.info("deploy: %d BatchNorm layers folded into their convolutions", n)
    if precision == "int8":
        return quantize_int8(sym, args, aux, calib_data, input_shape)
    if precision == "bf16":
        if not bf16_available():
            raise DeployError("bf16 needs an MXNet build that runs bfloat16 convolutions on CPU (oneDNN); "
                              "this one does not")
        sym, args, aux = convert_bf16(sym, args, aux)
    if fuse:  # bf16 too: conv + ReLU (+ sum) fused in bfloat16, 5% faster than unfused AMP (docs/benchmarks.md)
        sym = partition_for_cpu(sym)
    return sym, args, aux


def deploy_block(net, input_shape, *, precision="fp32", fold=True, fuse=True, stages="last", calib_data=None,
                 ctx=None):
    """A ``gluon.SymbolBlock`` computing ``net``'s last (or every) stage output for ``input_shape`` inputs.

    Args:
        net: an initialised pose net.
        input_shape: (N, 3, H, W) the deploy graph is built for (other batch sizes work too).
        precision: ``fp32`` (BatchNorm folded + oneDNN fusion), ``int8`` (oneDNN quantization calibrated on
            ``calib_data``, an (M, 3, H, W) array of real normalised crops) or ``bf16`` (MXNet AMP).
        fold / fuse: BatchNorm folding (fp32; always done for int8 / bf16) and oneDNN fusion (fp32, bf16) can be
            switched off (for comparisons).
        stages: ``last`` or ``all`` (multi-stage nets).
    """
    sym, args, aux = deploy_symbol(net, input_shape, precision=precision, fold=fold, fuse=fuse, stages=stages,
                                   calib_data=calib_data, ctx=ctx)
    return bind(sym, args, aux, ctx=ctx)


def _float_ends(sym):
    """Names of the convolutions that read the network input or produce an output: kept in fp32 (the image is
    signed and the heatmap/offset outputs need more than 8 bits of resolution)."""
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    names = {nodes[h[0]]["name"] for h in graph["heads"] if nodes[h[0]]["op"] == "Convolution"}
    names |= {n["name"] for n in nodes if n["op"] == "Convolution"
              and any(nodes[e[0]]["op"] == "null" and nodes[e[0]]["name"] == "data" for e in n["inputs"])}
    return sorted(names)


def quantize_int8(sym, arg_params, aux_params, calib_data, input_shape, *, num_calib=None, calib_mode="naive",
                  exclude_ends=True, excluded_ops=("elemwise_add",)):
    """oneDNN int8 symbol calibrated on ``calib_data`` (real crops; ``naive`` = per-tensor min/max).

    The stem convolution and the heads stay fp32, and so do the stand-alone additions of the HRNet fuse layers
    (``excluded_ops``; a convolution's residual sum fused into it stays int8): requantizing each partial sum of a
    fuse layer to 8 bits compounds, and on the overfit model (tests/test_overfit.py, flip test) int8 AP was 0.909
    with quantized additions, 0.972 without, against 0.980 in fp32 (``entropy`` calibration: 0.873); keeping them
    fp32 cost no measurable speed (W32 256x192 batch 8: 39-40 samples/s either way)."""
    if not onednn_available():
        raise DeployError("int8 needs an MXNet build with oneDNN (the pip 'mxnet' CPU wheel has it)")
    if calib_data is None or len(calib_data) == 0:
        raise DeployError("int8 needs calibration crops (real normalised network inputs)")
    from mxnet.contrib import quantization  # pylint: disable=import-outside-toplevel
    calib = np.asarray(calib_data, dtype=np.float32)
    batch = min(int(input_shape[0]), len(calib))
    data_iter = mx.io.NDArrayIter(data={"data": calib}, batch_size=batch, last_batch_handle="discard")
    logger = logging.getLogger("mxnet.quantization")
    logger.setLevel(logging.WARNING)
    qsym, qargs, qaux = quantization.quantize_model_mkldnn(
        sym=sym, arg_params=arg_params, aux_params=aux_params, ctx=mx.cpu(), calib_mode=calib_mode,
        calib_data=data_iter, num_calib_examples=num_calib or (len(calib) // batch) * batch,
        quantized_dtype="auto", quantize_mode="smart", quantize_granularity="channel-wise", logger=logger,
        excluded_sym_names=_float_ends(sym) if exclude_ends else None,
        excluded_op_names=list(excluded_ops or ()) or None)
    qsym = qsym.get_backend_symbol("MKLDNN_QUANTIZE")
    return qsym, qargs, qaux


def relu_as_activation(sym):
    """The symbol with every ``relu`` operator written as ``Activation(act_type='relu')`` (same function, same
    node names). In bfloat16 MXNet 1.9.1 runs ``Activation`` through oneDNN while ``relu`` takes a slow generic
    path: HRNet-W32 256x192 batch 8 ran at 4.4 samples/s with ``relu`` and 11.7 with ``Activation`` (fp32 deploy:
    6.8), measured interleaved on 2 loaded cores (docs/benchmarks.md). The models use ``Activation`` already; this
    keeps bf16 fast for graphs that still hold ``relu``."""
    def as_activation(node):
        if node["op"] == "relu":
            node["op"] = "Activation"
            node["attrs"] = {"act_type": "relu"}
            return True
        return False
    return _edit_nodes(sym, as_activation)


def convert_bf16(sym, arg_params, aux_params):
    """bf16 symbol through MXNet's CPU AMP: convolutions in bfloat16 (weights stored in bfloat16), ``UpSampling``
    (no bfloat16 kernel in MXNet 1.9.1) in fp32, sums and ReLUs in the widest type of their inputs; the graph casts
    its fp32 input to bfloat16 and returns fp32. ``relu`` operators become ``Activation``
    (:func:`relu_as_activation`)."""
    from mxnet.contrib import amp  # pylint: disable=import-outside-toplevel
    try:
        return amp.convert_model(relu_as_activation(sym), arg_params, aux_params, target_dtype="bfloat16",
                                 cast_optional_params=True)
    except Exception as err:  # pylint: disable=broad-except
        raise DeployError("bf16 conversion failed in this MXNet build: %s" % str(err).splitlines()[0]) from err


def calibration_crops(records, input_size_wh, *, udp=False, limit=32, mirrored=False):
    """Normalised network inputs of the first ``limit`` readable person records (boxes), for int8 calibration;
    ``mirrored`` appends their mirror images (the flip test feeds those too)."""
    from ..data.imageio import read_image  # pylint: disable=import-outside-toplevel
    from ..data.pipeline import TopDownTestTransform  # pylint: disable=import-outside-toplevel
    transform = TopDownTestTransform(input_size_wh=input_size_wh, udp=udp)
    crops, images = [], {}
    for record in records:
        if len(crops) >= limit:
            break
        if record.image_path not in images:
            try:
                images[record.image_path] = read_image(record.image_path)
            except UserError:
                images[record.image_path] = None
        if images[record.image_path] is not None:
            crops.append(transform(images[record.image_path], record)["image"])
    if not crops:
        raise DeployError("int8 calibration: none of the %d boxes gave a readable crop" % len(records))
    crops = np.stack(crops).astype(np.float32)
    return np.concatenate([crops, crops[..., ::-1]]) if mirrored else crops


def deploy_for_inference(net, codec, precision, *, batch_size, records=None, ctx=None, calib_limit=32):
    """The deploy graph of ``net`` (last stage) for inference at ``codec``'s input size; int8 calibrates on
    the crops of ``records`` (the boxes about to be evaluated or drawn). ``precision`` None keeps ``net``."""
    if not precision:
        return net
    w, h = codec.input_size_wh
    calib = None
    if precision == "int8":
        calib = calibration_crops(records or [], (w, h), udp=codec.udp, limit=calib_limit, mirrored=True)
    block = deploy_block(net, (int(batch_size), 3, int(h), int(w)), precision=precision, calib_data=calib,
                         ctx=ctx[0] if isinstance(ctx, (list, tuple)) else ctx)
    LOG.info("deploy graph: %s%s", precision, " (int8 calibrated on %d real crops)" % len(calib)
             if calib is not None else "")
    return block


def save_deploy(sym, arg_params, aux_params, prefix, epoch=0):
    """Write ``prefix-symbol.json`` and ``prefix-%04d.params`` (``arg:`` / ``aux:`` keys, as
    ``HybridBlock.export``); :func:`gluonpose.deploy.export.load_exported` (``gluon.SymbolBlock.imports``)
    loads them back, fp32 input ``data`` for every precision.

    bf16 graphs: ``Symbol.save`` / ``tojson`` / ``HybridBlock.export`` call ``MXSymbolRemoveAmpCast`` by default
    (``remove_amp_cast=True``), which reconnects every consumer of an ``amp_cast`` / ``amp_multicast`` node to
    the node's input. On the AMP graph that removes the fp32 -> bf16 cast of ``data`` (the output cast back to
    fp32 survives because it is a graph head), so the loaded graph's first convolution would get the fp32
    input and bf16 weights. The casts are kept here, and the written graph is type-checked with a float32
    input before it is saved."""
    from ..utils.io import atomic_write  # pylint: disable=import-outside-toplevel
    sym_path, params_path = "%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch)
    # keep AMP's amp_cast / amp_multicast nodes: Symbol.save drops them by default (remove_amp_cast=True),
    # which leaves a bf16 graph whose first convolution reads the fp32 input with bf16 weights
    graph = sym.tojson(remove_amp_cast=False)
    try:  # what is written must type-check with the fp32 input the loader feeds
        mx.sym.load_json(graph).infer_type(data=np.float32)
    except mx.base.MXNetError as err:
        raise RuntimeError("deploy graph does not type-check with a float32 input once serialised: %s"
                           % str(err).strip().splitlines()[-1]) from err

    def write_symbol(tmp):
        with open(tmp, "w") as f:
            f.write(graph)
    atomic_write(sym_path, write_symbol)
    blob = {"arg:%s" % k: v for k, v in arg_params.items()}
    blob.update({"aux:%s" % k: v for k, v in aux_params.items()})
    atomic_write(params_path, lambda tmp: mx.nd.save(tmp, blob))
    return sym_path, params_path
