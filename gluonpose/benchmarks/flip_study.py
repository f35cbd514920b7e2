"""The flip test with each fusion, on a trained model: which one to make the default.

For one config + weights, the validation AP (the config's ``data.val``, ground-truth boxes unless
``test.use_gt_boxes`` is false and a detection file is set) without the flip test and with each
:data:`~gluonpose.codecs.flipfuse.FLIP_FUSIONS` (``maps``: average the raw outputs and vote once,
the official HRNet flip test; ``votes``: add the two Hough vote maps; ``coords``: average the two
decoded positions), for the config's decoder and, for the heatmap + offset codec, the other one.
``scripts/benchmark.py --flip-study --config C --weights W`` prints the table of
``docs/benchmarks.md``.
"""
import copy

from ..codecs.builder import build_codec_from_config
from ..codecs.flipfuse import FLIP_FUSIONS
from ..evaluation.inference import TopDownPredictor
from ..evaluation.runner import evaluate_predictor, load_test_boxes, resolve_val_set
from ..models.builder import build_net_from_config


def flip_study(cfg, weights, *, ctx, decoders=None, workers=2):
    """{(decoder, setting): AP} for ``setting`` in ``'no flip'`` + the fusions a decoder allows.

    Args:
        cfg: loaded config. weights: its ``.params``. ctx: list of contexts.
        decoders: ``codec.params.decoder`` values to try (default: the config's, and for the
            heatmap + offset codec both ``hough`` and ``argmax``).
    """
    net, _ = build_net_from_config(cfg, weights, ctx)
    net.hybridize(static_alloc=True)
    gt_json, img_prefix, layout = resolve_val_set(cfg.data.val)
    det_json = None if cfg.test.use_gt_boxes else (cfg.data.det_json or None)
    boxes = load_test_boxes(gt_json, img_prefix, det_json=det_json, image_thr=cfg.test.image_thr,
                            layout=layout)
    if decoders is None:
        decoders = ["hough", "argmax"] if cfg.codec.type == "heatmap_offset" else [None]
    table = {}
    for decode in decoders:
        codec_cfg = copy.deepcopy(cfg.codec.to_dict())
        if decode is not None:
            codec_cfg["params"] = dict(codec_cfg["params"], decoder=decode)
        codec = build_codec_from_config(codec_cfg, cfg.model.num_joints)
        label = decode or cfg.codec.type
        settings = [("no flip", False, "maps")] + [
            ("flip, %s" % f, True, f) for f in FLIP_FUSIONS if codec.supports_flip_fusion(f)]
        for name, flip, fusion in settings:
            pred = TopDownPredictor(net, codec, ctx=ctx, flip=flip, flip_fusion=fusion,
                                    batch_size=cfg.test.batch_size)
            report = evaluate_predictor(pred, gt_json, img_prefix=img_prefix, boxes=boxes,
                                        in_vis_thr=cfg.test.in_vis_thr, oks_thr=cfg.test.oks_thr,
                                        layout=layout, workers=workers)
            table[(label, name)] = float(report.stats["AP"])
    return table, boxes.description


def format_flip_table(table):
    """Markdown rows: one per decoder, one column per setting."""
    settings = ["no flip"] + ["flip, %s" % f for f in FLIP_FUSIONS]
    decoders = []
    for d, _ in table:
        if d not in decoders:
            decoders.append(d)
    lines = ["| decoder | %s |" % " | ".join(settings), "|---|%s|" % "|".join("---" for _ in settings)]
    for d in decoders:
        cells = ["%.3f" % table[(d, s)] if (d, s) in table else "-" for s in settings]
        lines.append("| %s | %s |" % (d, " | ".join(cells)))
    return lines
