"""Test helpers: load a script of scripts/ as a module; give a net random weights with O(1) outputs.

The official init (conv N(0, 0.001)) gives ~1e-9 outputs, which any export or drawing would 'match';
:func:`randomize`'s weights make every comparison meaningful.
"""
import importlib.util
import os

import mxnet as mx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    """``scripts/<name>.py`` imported as a module (its ``main(argv)`` is then callable in-process)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize(net, seed, shape):
    """Initialise ``net`` with an (N, 3, H, W) = ``shape`` forward, then set seeded random weights."""
    rng = np.random.default_rng(seed)
    net(mx.nd.zeros(shape))
    for name, p in net.collect_params().items():
        s = p.shape
        if name.endswith("weight") and len(s) == 4:
            v = rng.standard_normal(s) * np.sqrt(1.0 / (s[1] * s[2] * s[3]))
        elif name.endswith("gamma"):
            v = rng.uniform(0.3, 0.6, s)
        elif name.endswith("running_var"):
            v = rng.uniform(1.0, 2.0, s)
        else:
            v = rng.standard_normal(s) * 0.1
        p.set_data(mx.nd.array(v))


def run_main(main, argv):
    """Call a script's ``main(argv)`` in-process; returns (exit code, captured stdout)."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def write_tiny_model(folder, key, name, size_wh, extra_yaml="", seed=None):
    """A model config ``folder/key.yaml`` (heatmap+offset head and codec at ``size_wh``, plus
    ``extra_yaml``) and its weights ``folder/key.params``: official init, or :func:`randomize`'d
    with ``seed``. Returns (config path, weights path, net)."""
    from gluonpose.config import load_config
    from gluonpose.models.builder import build_model

    w, h = size_wh
    cfg_path = os.path.join(str(folder), key + ".yaml")
    with open(cfg_path, "w") as f:
        f.write("model: {name: %s, head: heatmap_offset}\n"
                "codec: {type: heatmap_offset, input_size: [%d, %d], heatmap_size: [%d, %d]}\n%s"
                % (name, w, h, w // 4, h // 4, extra_yaml))
    net = build_model(**dict(load_config(cfg_path).model))
    if seed is not None:
        randomize(net, seed, (1, 3, h, w))
    weights = os.path.join(str(folder), key + ".params")
    net.save_parameters(weights)
    return cfg_path, weights, net


REFERENCE = os.path.join(ROOT, "tests", "data", "reference")


def load_reference(name):
    """An official reference file of ``tests/data/reference`` as a dict of arrays. The end-to-end files store
    only the weights that differ from ``official_hrnet_pose_w8.npz``; the rest are filled in from it."""
    with np.load(os.path.join(REFERENCE, name)) as f:
        out = {k: f[k] for k in f.files}
    if name.startswith("official_e2e_"):
        with np.load(os.path.join(REFERENCE, "official_hrnet_pose_w8.npz")) as pose:
            for k in pose.files:
                if k.startswith("param:") and k not in out:
                    out[k] = pose[k]
    return out
