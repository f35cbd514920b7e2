"""Decoder throughput on trained-like network outputs, one core.

Every decoder of the two codecs at the three crop sizes of the report (256x192, 384x288, 512x384),
on the outputs a trained net gives (:func:`gluonpose.codecs.trained_like.trained_like_outputs`:
disks or Gaussians scaled by a confidence, noise around 0 everywhere so that about half of the
heatmap pixels are positive, offsets outside the disks unconstrained). Decoding is timed in
batches of 32 (what the predictor hands the codec), best of ``repeats`` passes.
"""
import time

import numpy as np

from ..codecs import GaussianHeatmapCodec, HeatmapOffsetCodec
from ..codecs.hough import hough_decode_reference
from ..codecs.trained_like import trained_like_outputs

CROPS = ((192, 256), (288, 384), (384, 512))


def _gaussian_sigma(size_wh):
    """Official sigma 2 at 256x192 (48 px wide maps), scaled with the map: 3 at 384x288."""
    return 2.0 * (size_wh[0] // 4) / 48.0


def decoder_setups(size_wh):
    """[(label, codec, decode function)] of every decoder at one crop size."""
    hough = HeatmapOffsetCodec(size_wh)

    def hough_reference(outputs):
        k = hough.num_joints
        n, _, h, w = outputs.shape
        maps = [outputs[:, i * k:(i + 1) * k].reshape(n * k, h, w) for i in range(3)]
        return hough_decode_reference(*maps, hough.radius, hough.hough_refine_radius)

    sigma = _gaussian_sigma(size_wh)
    codecs = [
        ("heatmap+offset, Hough voting (default)", hough, hough.decode),
        ("heatmap+offset, Hough voting, numpy reference", hough, hough_reference),
        ("heatmap+offset, argmax", HeatmapOffsetCodec(size_wh, decoder="argmax"), None),
        ("gaussian, official quarter shift (get_final_preds)",
         GaussianHeatmapCodec(size_wh, sigma=sigma), None),
        ("gaussian, DARK", GaussianHeatmapCodec(size_wh, sigma=sigma, unbiased=True,
                                                decoder="dark"), None),
        ("gaussian, UDP + DARK", GaussianHeatmapCodec(size_wh, sigma=sigma, udp=True), None),
    ]
    return [(label, codec, fn or codec.decode) for label, codec, fn in codecs]


def time_decoder(decode, outputs, *, batch=32, repeats=3, min_seconds=0.5):
    """Samples/s of ``decode`` over ``outputs`` in batches of ``batch`` (best of ``repeats``
    passes, each at least ``min_seconds`` long)."""
    decode(outputs[:batch])                                      # compile / warm up
    best = 0.0
    for _ in range(max(1, repeats)):
        done, start = 0, time.perf_counter()
        while True:
            for s in range(0, len(outputs), batch):
                decode(outputs[s:s + batch])
            done += len(outputs)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, done / elapsed)
    return best


def decoder_rates(crops=CROPS, *, samples=64, repeats=3, min_seconds=0.5, seed=0):
    """{(label, crop): samples/s} for every decoder at every crop size."""
    import cv2
    cv2.setNumThreads(1)                          # one core: the blurs run in OpenCV
    rates = {}
    for size in crops:
        made = {}                                 # one set of outputs per codec kind and sigma
        for label, codec, decode in decoder_setups(size):
            key = (type(codec).__name__, getattr(codec, "sigma", None), codec.udp)
            if key not in made:
                made[key], _ = trained_like_outputs(codec, samples, rng=np.random.default_rng(seed))
            outputs = made[key]
            slow = "reference" in label
            rates[(label, size)] = time_decoder(decode, outputs[:16] if slow else outputs,
                                                batch=16 if slow else 32,
                                                repeats=1 if slow else repeats,
                                                min_seconds=min_seconds)
    return rates


def decoder_table(rates, crops=CROPS):
    """Markdown table of :func:`decoder_rates` (one row per decoder, one column per crop)."""
    labels = []
    for label, _ in rates:
        if label not in labels:
            labels.append(label)
    width = max(len(x) for x in labels + ["decoder"])
    heads = ["%dx%d" % (h, w) for w, h in crops]
    lines = ["| %s | %s |" % ("decoder".ljust(width), " | ".join(x.rjust(9) for x in heads)),
             "|-%s-|%s|" % ("-" * width, "|".join("-" * 11 for _ in heads))]
    for label in labels:
        vals = " | ".join(("%.0f" % rates[(label, c)]).rjust(9) for c in crops)
        lines.append("| %s | %s |" % (label.ljust(width), vals))
    return lines
