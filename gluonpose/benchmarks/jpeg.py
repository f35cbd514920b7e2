"""JPEG decoding with corrupt-data detection: ``scripts/benchmark.py --jpeg``.

Two measurements of :func:`gluonpose.data.imageio.read_image` (strict libjpeg-turbo decoding of
JPEGs):

* nothing good is rejected: ``count`` (default 10,000) undamaged JPEGs encoded from crops of the
  sample images over a grid of encoder settings (:func:`jpeg_variants`) are decoded; every one
  must decode, to exactly OpenCV's pixels;
* speed: the sample photos decoded by the reader against the previous path (the end-of-image
  check, ``cv2.imdecode``, BGR->RGB), interleaved rounds on one thread, medians and the ratio.
"""
import glob
import os
import statistics
import time

import cv2
import numpy as np

__all__ = ["jpeg_variants", "sample_jpegs", "bench_jpeg"]


def sample_jpegs(root):
    """The sample JPEGs of ``root`` (``tests/data/samples``: COCO, MPII, AIC, CrowdPose)."""
    return sorted(glob.glob(os.path.join(root, "*", "*.jpg")))


def jpeg_variants(sources, count, seed=0):
    """``count`` JPEG byte strings encoded from crops of the images ``sources`` over a grid of
    encoder settings: sizes from 1x1 up (odd ones, and whole images), quality 5-100, chroma
    subsampling 4:4:4 / 4:2:2 / 4:2:0 / 4:1:1 / 4:4:0, baseline or progressive, optimised
    Huffman tables or not, restart intervals, grey."""
    rng = np.random.default_rng(seed)
    images = [cv2.imread(p) for p in sources]
    samplings = [cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440]
    fixed = [(1, 1), (2, 3), (7, 5), (8, 8), (9, 17), (16, 16), (17, 33)]
    for k in range(count):
        img = images[k % len(images)]
        if k < len(fixed):
            h, w = fixed[k]
        elif k % 50 == 7:
            h, w = img.shape[:2]
        else:
            h = int(rng.integers(1, min(300, img.shape[0])))
            w = int(rng.integers(1, min(300, img.shape[1])))
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        crop = img[y:y + h, x:x + w]
        if k % 9 == 4:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(5, 101)),
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, samplings[k % len(samplings)],
                  cv2.IMWRITE_JPEG_PROGRESSIVE, int(k % 3 == 1),
                  cv2.IMWRITE_JPEG_OPTIMIZE, int(k % 4 == 2),
                  cv2.IMWRITE_JPEG_RST_INTERVAL, int(rng.choice([0, 0, 1, 4, 64]))]
        ok, buf = cv2.imencode(".jpg", crop, params)
        if not ok:
            raise RuntimeError("OpenCV could not encode JPEG variant %d" % k)
        yield buf.tobytes()


def opencv_rgb(data):
    """The previous decode: OpenCV, BGR -> RGB (None when OpenCV cannot decode)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _previous_read(path):
    from ..data.imageio import image_bytes_problem
    with open(path, "rb") as f:
        data = f.read()
    if image_bytes_problem(data) is not None:
        raise ValueError(path)
    return opencv_rgb(data)


def _timed(fn, paths, seconds):
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for p in paths:
            fn(p)
            n += 1
    return n / (time.perf_counter() - start)


def bench_jpeg(root, *, count=10000, rounds=5, seconds=2.0, work_dir, say=print):
    """Run both measurements; returns a dict (rejected, differing, decodes/s of both, ratio)."""
    from ..data.imageio import read_image
    from ..errors import DatasetError
    sources = sample_jpegs(root)
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, "jpeg_variant.jpg")
    rejected, differing = [], []
    for k, data in enumerate(jpeg_variants(sources, count)):
        with open(path, "wb") as f:
            f.write(data)
        try:
            ours = read_image(path)
        except DatasetError as err:
            rejected.append((k, str(err)))
            continue
        if not np.array_equal(ours, opencv_rgb(data)):
            differing.append(k)
    say("undamaged JPEG variants: %d decoded, %d rejected, %d differ from OpenCV's pixels"
        % (count, len(rejected), len(differing)))
    for k, err in rejected[:5]:
        say("  rejected variant %d: %s" % (k, err))
    old, new = [], []
    for _ in range(rounds):   # interleaved: the machine's load hits both alike
        old.append(_timed(_previous_read, sources, seconds))
        new.append(_timed(read_image, sources, seconds))
    res = {"count": count, "rejected": len(rejected), "differing": len(differing),
           "previous_per_s": statistics.median(old), "strict_per_s": statistics.median(new)}
    res["ratio"] = res["strict_per_s"] / res["previous_per_s"]
    say("decoding the %d sample photos, one thread, median of %d interleaved rounds: previous "
        "(OpenCV) %.1f /s, strict %.1f /s: ratio %.3f"
        % (len(sources), rounds, res["previous_per_s"], res["strict_per_s"], res["ratio"]))
    say("RESULT jpeg strict/previous decode ratio: %.3f" % res["ratio"])
    return res
