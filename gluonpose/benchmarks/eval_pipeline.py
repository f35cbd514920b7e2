"""The evaluation pipeline at COCO-val size with a stand-in network that costs nothing.

``scripts/benchmark.py --eval`` runs the real test path (:func:`~gluonpose.evaluation.runner.
evaluate_predictor`: boxes from the detection json, loader threads reading and cropping, the
forward pass, flip test, decoding and mapping back on their own thread, rescoring, OKS-NMS, the
results json and pycocotools) on the COCO-val-sized job of :mod:`.coco_val` (5,000 images,
104,125 boxes), with a network replaced by :class:`StandInNet`: it returns prebuilt trained-like
outputs of the right shape (so decoding costs what it costs on a trained net), and nothing else.
What is measured is therefore everything around the network: the rate a GPU server must not fall
below for its CPUs not to become the bottleneck.
"""
import os
import time

import mxnet as mx
import numpy as np

from ..codecs import HeatmapOffsetCodec
from ..codecs.trained_like import trained_like_outputs
from ..evaluation.inference import PipelineStats, TopDownPredictor
from ..evaluation.runner import evaluate_predictor, load_test_boxes
from .coco_val import coco_val_job

CROPS = ((288, 384), (384, 512))


class StandInNet:
    """A network that costs nothing: NDArray (B, 3, h, w) -> a prebuilt NDArray of B trained-like
    heatmap + offset outputs (nothing is computed, the input is not read).

    Like a trained net, it answers the mirrored crops with the mirror image of its answer (plus
    its own noise), so that the flip test fuses consistent outputs: the predictor runs the crops
    and then their mirror images, batch after batch, so every second call of a batch size returns
    the mirrored outputs.

    Args:
        codec: the codec whose outputs to imitate.
        seed: of the outputs.
    """

    def __init__(self, codec, seed=0):
        self.codec = codec
        self.seed = int(seed)
        self._bank = {}
        self._calls = {}

    def prepare(self, batch_sizes, ctx=None):
        """Build the outputs of these batch sizes now (the first call of a size builds them)."""
        from ..codecs.flipfuse import flip_back
        ctx = ctx or mx.cpu()
        for n in batch_sizes:
            n = int(n)
            if n in self._bank or n <= 0:
                continue
            rng = np.random.default_rng(self.seed)
            outputs, _ = trained_like_outputs(self.codec, n, rng=rng)
            noise = rng.normal(0.0, 0.02, outputs.shape).astype(np.float32)
            mirrored = flip_back(self.codec.flip_spec(), outputs) + noise
            self._bank[n] = (mx.nd.array(outputs, ctx=ctx), mx.nd.array(mirrored, ctx=ctx))
            self._calls[n] = 0

    def __call__(self, x):
        n = int(x.shape[0])
        self.prepare([n], x.context)
        self._calls[n] += 1
        return self._bank[n][(self._calls[n] - 1) % 2]


def run_eval_benchmark(*, size_wh, cache_root, workers=2, batch_size=32, flip=True, images=None,
                       boxes=None, out_json=None, progress=False):
    """One evaluation of the COCO-val-sized job at ``size_wh`` through the real test path.

    Args:
        size_wh: crop (w, h). cache_root: where the job is generated / cached.
        workers: loader threads. images, boxes: job size (default COCO val's 5,000 / 104,125).
        out_json: keep the results json there (default: a temporary file).

    Returns:
        dict with ``boxes``, ``images``, ``wall`` (s, inference), ``boxes_per_s`` (inference),
        ``stage_rates`` (box-predictions per busy second of each stage), ``stage_seconds``,
        ``postprocess_s`` (rescoring + NMS + json + pycocotools), ``total_s``, ``ap``.
    """
    from .coco_val import COCO_VAL_BOXES, COCO_VAL_IMAGES
    job = coco_val_job(cache_root, images=images or COCO_VAL_IMAGES, boxes=boxes or COCO_VAL_BOXES)
    codec = HeatmapOffsetCodec(tuple(size_wh))
    net = StandInNet(codec)
    predictor = TopDownPredictor(net, codec, flip=flip, batch_size=batch_size, name="stand-in")
    test_boxes = load_test_boxes(job["gt_json"], job["img_prefix"], det_json=job["det_json"])
    net.prepare([batch_size, len(test_boxes.records) % batch_size])   # outside the timing
    stats = PipelineStats()
    tic = time.perf_counter()
    report = evaluate_predictor(predictor, job["gt_json"], img_prefix=job["img_prefix"],
                                boxes=test_boxes, out_json=out_json, workers=workers, stats=stats,
                                progress=progress)
    total = time.perf_counter() - tic
    return {"boxes": report.num_boxes, "images": stats.images, "wall": stats.wall,
            "boxes_per_s": stats.boxes / stats.wall, "stage_rates": stats.rates(),
            "stage_seconds": dict(stats.seconds), "postprocess_s": total - stats.wall,
            "total_s": total, "ap": report.stats["AP"], "job": job["folder"]}


def peak_rss_gib():
    """This process's peak resident memory so far, GiB (Linux ``ru_maxrss`` is in KiB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / float(1 << 20)


def run_ensemble_benchmark(*, size_wh, cache_root, members=3, rotations=(-20.0, 0.0, 20.0),
                           scales=(0.9, 1.0, 1.1), workers=2, batch_size=32, images=None,
                           boxes=None, with_breakdown=True, progress=False):
    """The report's ensemble (``configs/ensemble/example.yaml``: 3 members x rotations
    {-20, 0, 20} x scales {0.9, 1, 1.1}, flip test in every view, score-weighted average, the
    per-member and per-view breakdown) on the COCO-val-sized job with stand-in networks, through
    :func:`~gluonpose.evaluation.tta.evaluate_ensemble`. Returns a dict with the rates, the
    times and the peak RSS."""
    import tempfile

    from ..evaluation.tta import evaluate_ensemble, tta_views
    from .coco_val import COCO_VAL_BOXES, COCO_VAL_IMAGES
    job = coco_val_job(cache_root, images=images or COCO_VAL_IMAGES, boxes=boxes or COCO_VAL_BOXES)
    codec = HeatmapOffsetCodec(tuple(size_wh))
    test_boxes = load_test_boxes(job["gt_json"], job["img_prefix"], det_json=job["det_json"])
    net = StandInNet(codec)                   # one set of outputs for every member (memory)
    net.prepare([batch_size, len(test_boxes.records) % batch_size])
    predictors = [TopDownPredictor(net, codec, flip=True, batch_size=batch_size,
                                   name="member%d" % m) for m in range(members)]
    views = tta_views(rotations, scales)
    stats = PipelineStats()
    rss_before = peak_rss_gib()
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gluonpose_bench_ens_") as tmp:
        table, num_boxes, _ = evaluate_ensemble(
            predictors, test_boxes, views, gt_json=job["gt_json"], layout="coco",
            out_json=os.path.join(tmp, "ensemble.json"), with_breakdown=with_breakdown,
            workers=workers, progress=progress, stats=stats, log=lambda *a: None, verbose=False)
    total = time.perf_counter() - tic
    return {"boxes": num_boxes, "members": members, "views": len(views), "wall": stats.wall,
            "box_views_per_s": stats.boxes / stats.wall, "stage_rates": stats.rates(),
            "stage_seconds": dict(stats.seconds), "fuse_and_score_s": total - stats.wall,
            "rows": len(table), "total_s": total, "peak_rss_gib": peak_rss_gib(),
            "rss_before_gib": rss_before}


def format_ensemble_result(size_wh, res, workers):
    """Lines describing one :func:`run_ensemble_benchmark` result, ending with the RESULT line."""
    w, h = size_wh
    per_view = res["boxes"] * res["members"] * res["views"]
    lines = ["ensemble %dx%d: %d boxes x %d members x %d views = %d box-views, flip test, %d loader "
             "threads, stand-in networks: inference %.1f s, %.1f box-views/s" % (
                 h, w, res["boxes"], res["members"], res["views"], per_view, workers, res["wall"],
                 res["box_views_per_s"]),
             "  fusing + scoring %d rows (members, views, ensemble): %.1f s; total %.1f s"
             % (res["rows"], res["fuse_and_score_s"], res["total_s"]),
             "  peak RSS %.2f GiB (%.2f GiB before the evaluation: the job's records, the stand-in "
             "outputs)" % (res["peak_rss_gib"], res["rss_before_gib"]),
             "RESULT eval-ensemble %dx%d peak RSS GiB: %.3f" % (h, w, res["peak_rss_gib"])]
    return lines


def format_eval_result(size_wh, res, workers):
    """Lines describing one :func:`run_eval_benchmark` result, ending with the RESULT line."""
    w, h = size_wh
    lines = ["eval pipeline %dx%d: %d boxes of %d images, flip test, %d loader threads, stand-in "
             "network (costs nothing): inference %.1f s, %.1f boxes/s" % (
                 h, w, res["boxes"], res["images"], workers, res["wall"], res["boxes_per_s"])]
    for stage in PipelineStats.STAGES:
        lines.append("  stage %-8s %8.1f s busy  %9.1f boxes per busy second"
                     % (stage, res["stage_seconds"][stage], res["stage_rates"][stage]))
    lines.append("  post-processing (rescoring, OKS-NMS, results json, pycocotools): %.1f s; "
                 "total %.1f s; AP %.3f (meaningless: a stand-in network)"
                 % (res["postprocess_s"], res["total_s"], res["ap"]))
    lines.append("RESULT eval-pipeline %dx%d boxes/s: %.3f" % (h, w, res["boxes_per_s"]))
    return lines


def default_cache_root():
    """``work_dirs/bench`` of the repository checkout (the generated job is kept there)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "work_dirs", "bench")
