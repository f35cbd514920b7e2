#!/usr/bin/env python
"""Look at the training data as the network sees it: N samples of a config's training set after
augmentation on one contact sheet PNG (``gluonpose-browse`` = ``python scripts/browse_samples.py``).

  gluonpose-browse configs/synthetic/mshrnet_w8_2stage_128x96_synthetic.yaml -o samples.png
  gluonpose-browse CONFIG -n 32 --columns 8 --seed 3 augment.flip_prob=1 augment.half_body_prob=1
  gluonpose-browse CONFIG --stage val                  # the validation set, test transform

Each tile is the network's input crop (de-normalised) with the sample's joints (its crop-space
keypoints with weight > 0, skeleton in the side colours), the training target decoded back by the
config's codec (last stage; magenta crosses, which must sit on the joints) and a caption: the
dataset and record, whether the sample was flipped and cut to a half body, its rotation (degrees)
and random scale factor. Samples are chosen at random (--seed) among the records of data.train;
record i is augmented with the generator the training loader uses for it (seed --seed, epoch
--epoch), so with --seed = train.seed a tile is exactly the sample training makes of that record in
that epoch. The same arguments give the same picture. --stage val: records of data.val through the
test transform (no augmentation). Prints the PNG path and a one-line summary (samples, how many
flipped / half-body, and how far the decoded target lands from the joints, in heatmap pixels).
"""
import argparse
import logging
import os
import sys
from typing import NamedTuple

import numpy as np

from gluonpose.utils.cli import parse_cli_args, run_cli

LOG = logging.getLogger("gluonpose.browse")


class Browse(NamedTuple):
    """What :func:`run` drew."""

    path: str               # the PNG
    stage: str              # 'train' or 'val'
    indices: list           # record index of every tile, in tile order
    samples: list           # the pipeline's sample dicts (made with report=True), in tile order
    captions: list          # the caption lines of every tile
    num_records: int        # records of the set the samples were chosen from
    skipped: int            # chosen records left out (bad image or record, data.on_bad: skip)
    decoded: np.ndarray     # (N, K, 2) targets decoded back, input-crop pixels
    trained: np.ndarray     # (N, K) bool: joints with a target (last stage target_weight > 0)
    max_distance: float     # largest |decoded - joint|, heatmap px, over the joints with a target
                            # whose position is on the heatmap (nan: none)
    off_map: int            # joints with a target but off the heatmap (not in max_distance)
    summary: str            # the printed summary line


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config (what the other commands take with --config)")
    p.add_argument("-o", "--out", default=None,
                   help="PNG to write (default: train.work_dir/browse_<stage>_seed<seed>.png)")
    p.add_argument("-n", "--num", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--seed", type=int, default=0,
                   help="chooses the samples and seeds their augmentation (default 0)")
    p.add_argument("--epoch", type=int, default=0,
                   help="the training epoch whose augmentation to show (default 0)")
    p.add_argument("--stage", choices=("train", "val"), default="train",
                   help="train: data.train after augmentation; val: data.val, test transform")
    p.add_argument("--columns", type=int, default=4, help="tiles per row (default 4)")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides (anywhere)")
    return parse_cli_args(p, argv)


def _check_args(args):
    from gluonpose.errors import ConfigError

    for flag, value, low in (("-n/--num", args.num, 1), ("--columns", args.columns, 1),
                             ("--seed", args.seed, 0), ("--epoch", args.epoch, 0)):
        if value < low:
            raise ConfigError("%s must be >= %d, got %d" % (flag, low, value))


def _train_set(cfg, codec):
    """(records, transform, name) of data.train; records built as training builds them."""
    from gluonpose.data.builder import build_train_records
    from gluonpose.data.pipeline import TopDownTrainTransform

    records = build_train_records(cfg.data, seed=int(cfg.train.seed))
    names = sorted({str(s.get("type")) for s in cfg.data.train})
    return records, TopDownTrainTransform(codec, **dict(cfg.augment)), "+".join(names)


def _val_set(cfg, codec):
    """(records, transform, name) of data.val with its keypoints, and the test transform."""
    from gluonpose.data.datasets import CocoStyleReader
    from gluonpose.data.pipeline import TopDownTestTransform
    from gluonpose.errors import ConfigError
    from gluonpose.evaluation.runner import resolve_val_set

    if not cfg.data.val:
        raise ConfigError("--stage val needs a validation set: data.val is empty in the config")
    gt_json, img_prefix, layout = resolve_val_set(cfg.data.val)
    reader = CocoStyleReader(gt_json, img_prefix, layout=layout, skip_empty=True,
                             on_bad=cfg.data.on_bad)
    name = str(cfg.data.val.get("type", "coco"))
    for record in reader.records:   # our own reader's records: named after the config's set
        record.dataset = name
    return reader.records, TopDownTestTransform(codec=codec), name


def _make_samples(records, indices, transform, args, on_bad):
    """The samples of the chosen records (augmented with the training loader's generator) and the
    number of records left out (bad image or record with ``on_bad`` skip)."""
    from gluonpose.data.loader import BadSampleError, make_sample
    from gluonpose.errors import DatasetError

    kept, samples, skipped = [], [], 0
    for i in indices:
        try:
            sample = make_sample(records, i, transform, seed=args.seed, epoch=args.epoch, report=True)
        except BadSampleError as err:   # as the training loader: bad image or record
            if on_bad == "raise":
                raise
            LOG.warning("left out %s", err)
            skipped += 1
            continue
        kept.append(int(i))
        samples.append(sample)
    if not samples:
        raise DatasetError("none of the %d chosen records gave a sample (see the warnings)"
                           % len(indices))
    return kept, samples, skipped


def caption(record, index, name, aug):
    """The caption lines of one tile."""
    yes = {True: "yes", False: "no"}
    return ["%s rec %d ann %s" % (record.dataset or name, index, record.ann_id),
            "flip %s  half-body %s" % (yes[aug["flipped"]], yes[aug["half_body"]]),
            "rot %+.1f deg  scale %.3f" % (aug["rotation"], aug["scale_factor"])]


def decode_distances(codec, samples, decoded, trained):
    """|decoded target - joint| in heatmap pixels (per axis divided by the codec's stride) of the
    joints with weight > 0 and a target.

    Returns:
        (on_map (M,), off_map (M2,)) float64: joints whose heatmap position lies on the map
        (``[-0.5, W - 0.5] x [-0.5, H - 0.5]``), and those off it (a Gaussian target keeps a joint
        while its window touches the map; its peak, and so the decoded position, is then on the
        border, not at the joint).
    """
    from gluonpose.codecs.common import feature_stride

    stride = feature_stride(codec.input_size_wh, codec.heatmap_size_wh, codec.udp)
    kps = np.stack([np.asarray(s["keypoints"], np.float64) for s in samples])
    u = kps[..., :2] / stride
    dist = np.linalg.norm(decoded / stride - u, axis=-1)
    size = np.asarray(codec.heatmap_size_wh, np.float64)
    on_map = ((u >= -0.5) & (u <= size - 0.5)).all(axis=-1)
    mask = trained & (kps[..., 2] > 0)
    return dist[mask & on_map], dist[mask & ~on_map]


def _summary(parts, codec, on_map, off_map):
    stage, n, num_records, skipped, augs, name = parts
    rot = [a["rotation"] for a in augs]
    scale = [a["scale_factor"] for a in augs]
    text = ("%d %s samples of %d records (%s)%s: %d flipped, %d half-body, rotation %+.1f..%+.1f "
            "deg, scale %.3f..%.3f; " % (
                n, stage, num_records, name, ", %d left out" % skipped if skipped else "",
                sum(a["flipped"] for a in augs), sum(a["half_body"] for a in augs),
                min(rot), max(rot), min(scale), max(scale)))
    if on_map.size:
        text += ("the target decoded by the %s codec lands within %.3g heatmap px of the joints "
                 "(max over %d joints)" % (codec.last.layout, float(on_map.max()), on_map.size))
    else:
        text += "no joint on the heatmap has a target to decode"
    if off_map.size:
        text += ("; %d joints off the heatmap still have a target, decoded up to %.3g heatmap px "
                 "away" % (off_map.size, float(off_map.max())))
    return text


def run(args):
    from gluonpose.codecs.builder import build_codec_from_config
    from gluonpose.config import load_config
    from gluonpose.evaluation.visualize import contact_sheet, save_image

    _check_args(args)
    cfg = load_config(args.config, args.overrides)
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    records, transform, name = (_train_set if args.stage == "train" else _val_set)(cfg, codec)
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(len(records), size=min(args.num, len(records)), replace=False))
    indices, samples, skipped = _make_samples(records, chosen, transform, args, cfg.data.on_bad)
    augs = [s["augmentation"] for s in samples]
    captions = [caption(records[i], i, name, a) for i, a in zip(indices, augs)]
    sheet, decoded, trained = contact_sheet(samples, codec, captions, columns=args.columns,
                                            mean=transform.mean, std=transform.std)
    out = args.out or os.path.join(cfg.train.work_dir, "browse_%s_seed%d.png"
                                   % (args.stage, args.seed))
    save_image(out, sheet)
    on_map, off_map = decode_distances(codec, samples, decoded, trained)
    text = _summary((args.stage, len(samples), len(records), skipped, augs, name), codec, on_map,
                    off_map)
    print(out)
    print(text, flush=True)
    return Browse(out, args.stage, indices, samples, captions, len(records), skipped, decoded,
                  trained, float(on_map.max()) if on_map.size else float("nan"), off_map.size,
                  text)


def main(argv=None):
    return run_cli(run, parse_args(argv), log_level=logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
