"""Parameter and multiply-add counts from the network's symbol (shape inference only, nothing runs)."""
import json

import mxnet as mx
import numpy as np


def count_parameters(net, trainable_only=True):
    """Number of scalar parameters; ``trainable_only`` leaves out BatchNorm running statistics
    (the convention of PyTorch's ``parameters()`` and of the official HRNet counts)."""
    total = 0
    for name, p in net._collect_params_with_prefix().items():
        if trainable_only and name.endswith(("running_mean", "running_var")):
            continue
        total += int(np.prod(p.shape))
    return total


def count_macs(net, input_size_wh, batch=1):
    """Convolution + fully-connected multiply-adds for one forward pass at ``input_size_wh`` (w, h).

    The official HRNet reports ``GFLOPs`` as these MACs / 2**30 (``get_model_summary``).
    """
    w, h = input_size_wh
    data = mx.sym.var("data")
    out = net(data)
    sym = mx.sym.Group(out) if isinstance(out, (list, tuple)) else out
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=(batch, 3, h, w))
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())["nodes"]
    macs = 0
    for node in nodes:
        op = node["op"]
        if op not in ("Convolution", "FullyConnected"):
            continue
        out_shape = shapes[node["name"] + "_output"]
        weight_name = nodes[node["inputs"][1][0]]["name"]
        weight_shape = shapes[weight_name]
        if op == "Convolution":  # weight (O, I / groups, kh, kw): per output element I/groups*kh*kw
            macs += int(np.prod(out_shape)) * int(np.prod(weight_shape[1:]))
        else:
            macs += int(np.prod(out_shape)) * int(weight_shape[1])
    return macs // batch


def describe(net, sizes_wh=((192, 256), (288, 384), (384, 512))):
    """Rows ``(input_size_wh, params, MACs, HR-convention GFLOPs = MACs / 2**30)``."""
    params = count_parameters(net)
    rows = []
    for size in sizes_wh:
        macs = count_macs(net, size)
        rows.append((tuple(size), params, macs, macs / 2.0 ** 30))
    return rows


#: The rows of the model table of docs/getting-started.md: (label, get_model name, get_model keyword arguments).
TABLE_MODELS = (
    ("hrnet_w32 (official pose, 17-ch heatmap)", "hrnet_w32", {}),
    ("hrnet_w48 (official pose)", "hrnet_w48", {}),
    ("mshrnet_w48_1stage (heatmap + offset)", "mshrnet_w48_1stage", {}),
    ("**mshrnet_w48_2stage** (default)", "mshrnet_w48_2stage", {}),
    ("mshrnet_w48_2stage, `stage_input=image`", "mshrnet_w48_2stage", {"stage_input": "image"}),
    ("mshrnet_w48_2stage, `cross_stage=conv1x1`", "mshrnet_w48_2stage", {"cross_stage": "conv1x1"}),
)
SUMMARY_SIZES_WH = ((192, 256), (288, 384), (384, 512))


def summary_table(models=TABLE_MODELS, sizes_wh=SUMMARY_SIZES_WH):
    """Markdown table of parameters and cost, one row per ``(label, name, kwargs)`` of ``models``
    (default: the table of docs/getting-started.md), columns ``GMAC / GFLOPs`` at each input size (h x w).
    Returns the lines."""
    from .zoo import get_model

    head = "| model | params | " + " | ".join(
        ("%dx%d GMAC / GFLOPs" if i == 0 else "%dx%d") % (h, w) for i, (w, h) in enumerate(sizes_wh)) + " |"
    lines = [head, "|" + "---|" * (2 + len(sizes_wh))]
    for label, name, kwargs in models:
        net = get_model(name, initialize=False, **kwargs)
        rows = describe(net, sizes_wh)
        lines.append("| %s | %s | %s |" % (label, format(rows[0][1], ","), " | ".join(
            "%.2f / %.2f" % (macs / 1e9, gflops) for _, _, macs, gflops in rows)))
    return lines
