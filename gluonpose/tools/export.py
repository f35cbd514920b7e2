#!/usr/bin/env python
"""Export a trained model for deployment: hybridized symbol + params, and optionally ONNX
(``gluonpose-export`` = ``python scripts/export.py``).

  python scripts/export.py --config C --weights W.params --out-prefix deploy/mshrnet
  python scripts/export.py --config C --weights W.params --out-prefix deploy/mshrnet --onnx \\
      --stages last --dynamic-batch --check

Writes PREFIX-symbol.json + PREFIX-0000.params (load with
``gluon.SymbolBlock.imports(PREFIX-symbol.json, ['data'], PREFIX-0000.params)``) and, with
--onnx, PREFIX.onnx (through mxnet.onnx; needs ``pip install -e .[onnx]``). Input ``data``:
(batch, 3, h, w) RGB crops normalised with the ImageNet mean / std, (w, h) = codec.input_size.
Multi-stage nets give one output per stage (--stages all, ONNX names output_stage1..S) or only the
last one, the one the codec decodes (--stages last, ONNX name output). --check runs the exported
files (SymbolBlock and onnxruntime) on a random batch and prints the largest difference to the
Gluon model. --deploy fp32|int8|bf16 writes the CPU deploy graph (last stage) instead; it loads the
same way and takes the same float32 input (a bf16 graph casts it to bfloat16 inside).
"""
import argparse
import logging
import os
import sys
import time

from gluonpose.utils.cli import parse_cli_args, run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="model YAML config")
    p.add_argument("--weights", required=True, help="gluonpose .params file of that model")
    p.add_argument("--out-prefix", default=None,
                   help="output prefix (default: beside the weights, without .params)")
    p.add_argument("--onnx", action="store_true", help="also write PREFIX.onnx")
    p.add_argument("--batch", type=int, default=1, help="batch size of the exported input shape")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="ONNX: leave the batch dimension free")
    p.add_argument("--stages", choices=("all", "last"), default="all",
                   help="multi-stage nets: export every stage output or only the last")
    p.add_argument("--deploy", choices=("fp32", "int8", "bf16"), default=None,
                   help="write the CPU deploy graph instead (fp32: BatchNorm folded + oneDNN fusion; int8: "
                        "calibrated on the ground-truth boxes of data.val; bf16: MXNet AMP, the graph casts "
                        "its fp32 input itself); last stage only, no ONNX. Load it with "
                        "gluon.SymbolBlock.imports(PREFIX-symbol.json, ['data'], PREFIX-0000.params) and "
                        "feed float32 crops, whatever the precision")
    p.add_argument("--check", action="store_true",
                   help="compare the exported model(s) with the Gluon model on random input")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides (anywhere)")
    return parse_cli_args(p, argv)


def _check(net, exported, onnx_path, prefix, stages):
    import numpy as np

    from gluonpose.deploy.export import load_exported, max_abs_difference, mxnet_outputs, run_onnx

    data = np.random.default_rng(0).standard_normal(exported.input_shape).astype(np.float32)
    ref = mxnet_outputs(net, data)
    if stages == "last":
        ref = ref[-1:]
    diffs = {"symbol+params": max_abs_difference(ref, mxnet_outputs(load_exported(prefix), data))}
    if onnx_path:
        diffs["onnx (onnxruntime)"] = max_abs_difference(ref, run_onnx(onnx_path, data))
    scale = max(float(np.abs(r).max()) for r in ref)
    for name, diff in diffs.items():
        print("check %s: max |difference| %.3g (outputs up to %.3g)" % (name, diff, scale))
    return diffs


def _export_deploy(args, cfg, net, codec, prefix):
    import mxnet as mx
    import numpy as np

    from gluonpose.deploy.export import load_exported
    from gluonpose.deploy.optimize import deploy_symbol, save_deploy
    from gluonpose.errors import ConfigError
    from gluonpose.tools.demo import val_calibration_records

    if args.onnx:
        raise ConfigError("--onnx exports the training graph: drop --deploy for ONNX")
    w, h = codec.input_size_wh
    shape = (args.batch, 3, h, w)
    calib = None
    if args.deploy == "int8":
        from gluonpose.deploy.optimize import calibration_crops
        calib = calibration_crops(val_calibration_records(cfg), (w, h), udp=codec.udp, mirrored=True)
    start = time.time()
    sym, arg_params, aux_params = deploy_symbol(net, shape, precision=args.deploy, calib_data=calib)
    paths = save_deploy(sym, arg_params, aux_params, prefix)
    print("model %s (%s), deploy %s graph, input %s (batch, 3, h, w), last stage"
          % (cfg.model.name, args.config, args.deploy, shape))
    print("wrote %s and %s (%.1f s)" % (paths[0], paths[1], time.time() - start))
    diffs = {}
    if args.check:
        data = calib[:args.batch] if calib is not None else \
            np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        ref = net(mx.nd.array(data))
        ref = (ref[-1] if isinstance(ref, (list, tuple)) else ref).asnumpy()
        out = load_exported(prefix)(mx.nd.array(data)).asnumpy()
        diffs["deploy " + args.deploy] = float(np.abs(out - ref).max())
        print("check deploy %s: max |difference| %.3g (outputs up to %.3g)"
              % (args.deploy, diffs["deploy " + args.deploy], float(np.abs(ref).max())))
    return paths, None, diffs


def run(args):
    from gluonpose.config import load_config
    from gluonpose.errors import ConfigError
    from gluonpose.deploy.export import export_onnx, export_symbol
    from gluonpose.models.builder import build_net_from_config

    import mxnet as mx

    if args.batch < 1:
        raise ConfigError("--batch must be >= 1, got %d" % args.batch)
    cfg = load_config(args.config, args.overrides)
    net, codec = build_net_from_config(cfg, args.weights, [mx.cpu()])
    prefix = args.out_prefix or os.path.splitext(args.weights)[0]
    if args.deploy:
        return _export_deploy(args, cfg, net, codec, prefix)
    start = time.time()
    exported = export_symbol(net, prefix, codec.input_size_wh, batch=args.batch, stages=args.stages)
    print("model %s (%s), input %s (batch, 3, h, w), %d output(s)"
          % (cfg.model.name, args.config, exported.input_shape, exported.num_outputs))
    print("wrote %s and %s (%.1f s)" % (exported.symbol, exported.params, time.time() - start))
    onnx_path = None
    if args.onnx:
        start = time.time()
        onnx_path = export_onnx(exported, prefix + ".onnx", dynamic_batch=args.dynamic_batch)
        print("wrote %s (%.1f s)" % (onnx_path, time.time() - start))
    diffs = _check(net, exported, onnx_path, prefix, args.stages) if args.check else {}
    return exported, onnx_path, diffs


def main(argv=None):
    return run_cli(run, parse_args(argv), log_level=logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
