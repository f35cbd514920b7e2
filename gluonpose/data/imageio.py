"""The one image reader of training, evaluation and the demo: :func:`read_image`.

OpenCV decodes a JPEG cut short as an image whose lower part is flat grey (libjpeg only prints
"Premature end of JPEG file", without the file name), so the bytes are checked first: a JPEG must
reach its end-of-image marker and a PNG its IEND chunk.

Damage inside a JPEG's entropy-coded data (flipped or missing bytes) is reported by libjpeg as a
*warning* ("Corrupt JPEG data: premature end of data segment", "bad Huffman code", "N extraneous
bytes before marker"), which OpenCV prints and then returns the damaged image. JPEGs are
therefore decoded with libjpeg-turbo through ``simplejpeg`` in strict mode (warnings are errors),
with OpenCV's settings (accurate integer DCT, fancy upsampling): the pixels are identical to
``cv2.imdecode`` and decoding is not slower (measured: docs/benchmarks.md). A JPEG simplejpeg
cannot convert (CMYK, 12-bit) goes to OpenCV as before. Damage that leaves a valid code stream
(some single flipped bytes) cannot be seen by any decoder: JPEG carries no checksum.

Every failure is a :class:`~gluonpose.errors.DatasetError` (or
:class:`~gluonpose.errors.MissingFileError`) naming the file; callers decide whether that is an
error or a counted skip (``data.on_bad``).
"""
import cv2
import numpy as np
import simplejpeg

from ..errors import DatasetError, MissingFileError

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def _jpeg_complete(data):
    """True when a JPEG stream reaches its end-of-image marker (FFD9).

    Fast path: the file ends with FFD9 (after zero padding). Otherwise walk the marker segments and
    the entropy-coded scans (where FF is followed only by 00 stuffing or RSTn) up to EOI, so data
    appended after EOI is accepted and an EOI inside an EXIF thumbnail is not mistaken for the end.
    """
    if data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return True
    pos, end = 2, len(data)
    while pos + 1 < end:
        if data[pos] != 0xFF:
            return False                      # garbage where a marker should be
        marker = data[pos + 1]
        if marker == 0xFF:                    # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 4 > end:
            return False
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker != 0xDA:                    # not start-of-scan: next segment follows
            continue
        while True:                           # entropy-coded data up to the next real marker
            j = data.find(b"\xff", pos)
            if j < 0 or j + 1 >= end:
                return False
            nxt = data[j + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                pos = j + 2
            elif nxt == 0xFF:
                pos = j + 1
            else:
                pos = j
                break
    return False


def _png_complete(data):
    """True when a PNG stream's chunks reach IEND."""
    if data.endswith(_PNG_IEND):
        return True
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        if data[pos + 4:pos + 8] == b"IEND":
            return True
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
    return False


def image_bytes_problem(data):
    """Why the bytes of an image file cannot be trusted (a sentence), or None.

    Checks what OpenCV does not report: a JPEG or PNG cut short (libjpeg decodes a truncated JPEG
    with a grey lower part and only prints "Premature end of JPEG file"). Other formats are left to
    the decoder.
    """
    if not data:
        return "empty image file (0 bytes)"
    if data.startswith(_JPEG_SOI):
        return None if _jpeg_complete(data) else "truncated or corrupt JPEG (no end-of-image marker)"
    if data.startswith(_PNG_SIGNATURE):
        return None if _png_complete(data) else "truncated or corrupt PNG (no IEND chunk)"
    return None


def decode_jpeg_strict(data, path="<bytes>"):
    """(H, W, 3) uint8 RGB of a JPEG, decoded as OpenCV does, with libjpeg's corrupt-data
    warnings raised as a :class:`~gluonpose.errors.DatasetError` naming ``path``; None when this
    decoder does not handle the file (the caller uses OpenCV)."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False,
                                      strict=True)
    except ValueError as strict_error:
        try:
            simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False,
                                   strict=False)
        except ValueError:
            return None   # not a warning: an error of this decoder (unsupported kind of JPEG)
        reason = str(strict_error).strip().splitlines()[0] if str(strict_error).strip() else "?"
        raise DatasetError("corrupt JPEG data (libjpeg: %s): %s" % (reason, path)) from None


def read_image(path):
    """Read an image file as (H, W, 3) uint8 **RGB**; EXIF orientation is ignored (as official
    HRNet, so pixels match the annotations).

    The one image reader of training, evaluation and the demo. Raises
    :class:`~gluonpose.errors.MissingFileError` when the file does not exist and
    :class:`~gluonpose.errors.DatasetError` (naming the file) when it is unreadable, empty, a
    truncated JPEG/PNG (see :func:`image_bytes_problem`), a JPEG with corrupt data (see
    :func:`decode_jpeg_strict`) or not decodable.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise MissingFileError("image file not found: %s" % path) from None
    except OSError as err:
        raise DatasetError("cannot read image file %s: %s" % (path, err)) from None
    problem = image_bytes_problem(data)
    if problem is not None:
        raise DatasetError("%s: %s" % (problem, path))
    if data.startswith(_JPEG_SOI):
        rgb = decode_jpeg_strict(data, path)
        if rgb is not None:
            return rgb
    img = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DatasetError("cannot decode image file (corrupt or unsupported format): %s" % path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
