"""JPEGs damaged inside their entropy-coded data (which OpenCV decodes without an error) are
detected by the image reader (gluonpose/data/imageio.py), and no undamaged JPEG is rejected or
decoded differently from OpenCV."""
import glob
import os

import numpy as np
import pytest

from gluonpose.data.imageio import decode_jpeg_strict, read_image
from gluonpose.errors import DatasetError
from test_pipeline import damage_scan

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "samples")


def _sources():
    return sorted(glob.glob(os.path.join(SAMPLES, "*", "*.jpg")))


def _opencv_rgb(data):
    from gluonpose.benchmarks.jpeg import opencv_rgb
    return opencv_rgb(data)


def jpeg_variants(count, seed=0):
    from gluonpose.benchmarks.jpeg import jpeg_variants as variants
    return variants(_sources(), count, seed)


def test_undamaged_jpegs_decode_exactly_as_opencv(tmp_path):
    """400 encoder variants (the benchmark runs 10,000): none rejected, every pixel equal to
    OpenCV's decode."""
    path = tmp_path / "v.jpg"
    for k, data in enumerate(jpeg_variants(400)):
        path.write_bytes(data)
        ours = read_image(str(path))
        assert np.array_equal(ours, _opencv_rgb(data)), k
        assert ours.flags["C_CONTIGUOUS"] and ours.dtype == np.uint8 and ours.shape[2] == 3


def _damaged(data, rng, mode):
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    end = len(data) - 2
    p = int(rng.integers(start + (end - start) // 4, start + 3 * (end - start) // 4))
    if mode == "remove":
        return data[:p] + data[p + 50:]
    if mode == "zero":
        return data[:p] + b"\0" * 64 + data[p + 64:]
    out = bytearray(data)
    out[p] ^= 0x5A
    return bytes(out)


def test_damage_in_the_scan_is_detected(tmp_path):
    """Bytes removed, zeroed or flipped in the middle of the scan data of the real sample JPEGs:
    OpenCV decodes nearly every one of them without an error. The reader rejects every damaged file
    libjpeg reports, naming it; of those with visible damage (> 1 % of the pixels off by more
    than 30 levels) it rejects >= 90 % of the removals and zeroed runs and >= 70 % of single-byte
    flips (measured: 97 %, 91 %, 80 %; the rest are valid code streams, which no decoder can
    tell from an intact file since JPEG has no checksum)."""
    rng = np.random.default_rng(0)
    rates = {}
    for mode in ("remove", "zero", "flip"):
        visible = caught = silent = 0
        for src in _sources():
            data = open(src, "rb").read()
            reference = _opencv_rgb(data)
            for _ in range(8):
                bad = _damaged(data, rng, mode)
                decoded = _opencv_rgb(bad)
                path = tmp_path / ("bad_" + os.path.basename(src))
                path.write_bytes(bad)
                if decoded is None:   # the rare fatal damage: OpenCV fails too, so do we
                    with pytest.raises(DatasetError, match=str(path)):
                        read_image(str(path))
                    continue
                silent += 1
                try:
                    read_image(str(path))
                    rejected = False
                except DatasetError as err:
                    assert str(path) in str(err) and "corrupt JPEG data" in str(err)
                    rejected = True
                if decoded.shape == reference.shape and (
                        np.abs(decoded.astype(int) - reference).max(axis=2) > 30).mean() > 0.01:
                    visible += 1
                    caught += rejected
        rates[mode] = caught / visible
        assert silent >= 0.9 * 8 * len(_sources())   # OpenCV decodes nearly all without error
    assert rates["remove"] >= 0.9 and rates["zero"] >= 0.9 and rates["flip"] >= 0.7, rates


def test_strict_decoder_error_message_and_fallback():
    data = open(_sources()[0], "rb").read()
    with pytest.raises(DatasetError, match=r"corrupt JPEG data \(libjpeg: Corrupt JPEG data: .*\): x\.jpg"):
        decode_jpeg_strict(damage_scan(data), "x.jpg")
    # CMYK (written by Pillow): converted to RGB exactly as OpenCV does
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.open(_sources()[0]).convert("CMYK").save(buf, format="JPEG", quality=90)
    cmyk = buf.getvalue()
    assert np.array_equal(_read_bytes(cmyk), _opencv_rgb(cmyk))
    # what the strict decoder cannot read at all (not a warning) is left to OpenCV: None here,
    # then read_image's OpenCV path names the file
    junk = data[:2] + b"\xff\xe0\x00\x10JFIF" + bytes(64) + b"\xff\xd9"
    assert decode_jpeg_strict(junk) is None
    with pytest.raises(DatasetError, match="cannot decode image file"):
        _read_bytes(junk)


def _read_bytes(data):
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(data)
        f.flush()
        return read_image(f.name)


def test_jpeg_benchmark_reports_rejections_and_ratio(tmp_path):
    from gluonpose.benchmarks.jpeg import bench_jpeg
    lines = []
    res = bench_jpeg(SAMPLES, count=30, rounds=1, seconds=0.1, work_dir=str(tmp_path), say=lines.append)
    assert res["rejected"] == res["differing"] == 0 and res["ratio"] > 0
    assert lines[-1].startswith("RESULT jpeg strict/previous decode ratio: ")
