"""Top-down crop geometry: box -> (center, scale), crop matrices, flips, half-body boxes.

Conventions used everywhere in gluonpose:

* Image coordinates are pixels with pixel centres at integers (x right, y down), as OpenCV's
  ``warpAffine`` samples them.
* ``scale`` is the crop's source-image size **in pixels**, (2,) ``[w, h]``. The official HRNet code
  stores it in units of ``PIXEL_STD = 200`` px; :func:`scale_to_pixel_std` /
  :func:`scale_from_pixel_std` are the only converters (used for results json and reference checks).
* Rotation is in degrees with the official HRNet sign: the crop matrix's linear part is
  ``k * [[cos r, sin r], [-sin r, cos r]]``, for both the official and the UDP variant, so a
  rotation TTA or augmentation means the same thing whichever convention the codec uses.
* Crop matrices are (2, 3) float64 mapping image -> crop (``inv=True`` gives crop -> image).

Two crop conventions:

* ``udp=False`` (official HRNet ``get_affine_transform``): the box centre maps to ``(w/2, h/2)``
  and the isotropic zoom is ``out_w / scale_w``. The arithmetic is the official one too: centre
  and scale rounded to float32 as ``_xywh2cs`` stores them, the matrix from float32 points by
  ``cv2.getAffineTransform``, so crops are pixel-identical to the official test crops.
* ``udp=True`` (Huang et al., "The Devil is in the Details", CVPR 2020): sizes are measured as
  ``size - 1`` (unit length between the first and last pixel centre), so the box centre maps to
  ``((w-1)/2, (h-1)/2)`` and the zoom is ``(out - 1) / scale`` per axis. This is what makes
  flipping and heatmap down-sampling unbiased. Exact float64 arithmetic throughout.
"""
import math

import cv2
import numpy as np

from ..keypoints import COCO_FLIP_PAIRS, COCO_UPPER_BODY_IDS, swap_flip_pairs

PIXEL_STD = 200.0

#: Probability that the official code picks the upper body in half-body augmentation: it tests
#: ``np.random.randn() < 0.5`` (a normal, not a uniform draw), i.e. Phi(0.5).
OFFICIAL_HALF_BODY_UPPER_PROB = 0.5 * (1.0 + math.erf(0.5 / math.sqrt(2.0)))


def scale_to_pixel_std(scale_px):
    """Scale in pixels (..., 2) -> official units of 200 px."""
    return np.asarray(scale_px, dtype=np.float64) / PIXEL_STD


def scale_from_pixel_std(scale_std):
    """Scale in official 200-px units (..., 2) -> pixels."""
    return np.asarray(scale_std, dtype=np.float64) * PIXEL_STD


def _fix_aspect(w, h, aspect):
    """Grow (w, h) so that w / h == aspect (official ``_xywh2cs`` rule: only ever enlarge)."""
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return w, h


def box_to_center_scale(bbox_xywh, input_size_wh, padding=1.25, udp=False):
    """Official HRNet ``_xywh2cs`` with the scale in pixels.

    Args:
        bbox_xywh: (4,) ``[x, y, w, h]`` in image pixels (the file's values: float64 keeps them).
        input_size_wh: network input ``(w, h)``; the box is enlarged to this aspect ratio.
        padding: extra enlargement factor (1.25 in HRNet for both GT and detected boxes).
        udp: ``False`` (official convention) rounds as the official code does: the centre is
            stored in float32, the scale in float32 units of 200 px, padded in float32 and turned
            back into float32 pixels (``scale * 200`` of the official ``get_affine_transform``).
            A box whose centre or scale lies within float32 rounding of a pixel-grid boundary
            then gives the official crop, not a neighbouring one. ``True`` keeps float64 throughout.

    Returns:
        center (2,) ``(x + w/2, y + h/2)`` and scale (2,) ``[w, h] * padding`` in pixels, float64
        arrays (holding float32-representable values when ``udp=False``).
    """
    x, y, w, h = [float(v) for v in np.asarray(bbox_xywh).reshape(4)]
    aspect = float(input_size_wh[0]) / float(input_size_wh[1])
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float64)
    w, h = _fix_aspect(w, h, aspect)
    if udp:
        return center, np.array([w, h], dtype=np.float64) * padding
    scale_std = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * np.float32(padding)
    scale_px = scale_std * np.float32(PIXEL_STD)
    return center.astype(np.float32).astype(np.float64), scale_px.astype(np.float64)


def _rotation_linear(rot_deg):
    r = math.radians(float(rot_deg))
    c, s = math.cos(r), math.sin(r)
    return np.array([[c, s], [-s, c]], dtype=np.float64)


def _official_matrix(center, scale_px, rot_deg, output_size_wh, shift, inv):
    """The official three-point construction (float32 points) solved by ``cv2.getAffineTransform``.

    Both steps are the official ones on purpose: ``cv2.warpAffine`` inverts the matrix and rounds
    source coordinates to 1/32 px, so even a 1e-14 difference in the matrix (from solving the
    same points another way) can move a pixel at a rounding boundary and change the crop.
    """
    center = np.asarray(center, dtype=np.float32)
    scale_tmp = np.asarray(scale_px, dtype=np.float32)
    shift = np.asarray(shift, dtype=np.float32)
    src_w = scale_tmp[0]
    dst_w, dst_h = float(output_size_wh[0]), float(output_size_wh[1])
    r = np.pi * float(rot_deg) / 180.0                                 # official rot_rad
    sn, cs = np.sin(r), np.cos(r)
    src_dir = np.array([0.5 * src_w * sn, -0.5 * src_w * cs])        # R(r) @ [0, -src_w / 2]
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale_tmp * shift
    src[1] = center + src_dir + scale_tmp * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    for pts in (src, dst):                                             # third point: perpendicular
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    a, b = (dst, src) if inv else (src, dst)
    return cv2.getAffineTransform(a, b).astype(np.float64)            # (2, 3)


def _udp_matrix(center, scale_px, rot_deg, output_size_wh, inv):
    """UDP crop: centre -> ((w-1)/2, (h-1)/2), per-axis zoom (out-1)/scale, official rotation sign."""
    center = np.asarray(center, dtype=np.float64)
    scale_px = np.asarray(scale_px, dtype=np.float64)
    out_c = (np.asarray(output_size_wh, dtype=np.float64) - 1.0) / 2.0
    zoom = (np.asarray(output_size_wh, dtype=np.float64) - 1.0) / scale_px
    lin = zoom[:, None] * _rotation_linear(rot_deg)
    mat = np.concatenate([lin, (out_c - lin @ center)[:, None]], axis=1)
    return invert_affine(mat) if inv else mat


def get_affine_transform(center, scale_px, rot_deg, output_size_wh, shift=(0.0, 0.0), inv=False,
                         udp=False):
    """(2, 3) crop matrix image -> crop (or crop -> image with ``inv=True``).

    ``udp=False`` reproduces the official HRNet ``get_affine_transform`` bit for bit (float32
    point construction, ``cv2.getAffineTransform``); only the scale width sets the (isotropic)
    zoom. ``udp=True`` gives the unbiased ``size - 1`` variant;
    ``shift`` (a fraction of the scale, official semantics) is only supported without UDP.

    Args:
        center: (2,) box centre in image pixels.
        scale_px: (2,) box size in pixels (see :func:`box_to_center_scale`).
        rot_deg: rotation in degrees.
        output_size_wh: crop size ``(w, h)`` (input size, or heatmap size for the official decode).
    """
    if udp:
        if np.any(np.asarray(shift) != 0):
            raise ValueError("shift is not supported with udp=True")
        return _udp_matrix(center, scale_px, rot_deg, output_size_wh, inv)
    return _official_matrix(center, scale_px, rot_deg, output_size_wh, shift, inv)


def affine_points(points, mat):
    """Apply a (2, 3) affine matrix to points (..., 2) -> (..., 2) float64."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def invert_affine(mat):
    """Exact inverse of a (2, 3) affine matrix (undoes rotation, scale and translation)."""
    lin = np.linalg.inv(np.asarray(mat, dtype=np.float64)[:, :2])
    return np.concatenate([lin, (-lin @ mat[:, 2])[:, None]], axis=1)


def crop_to_image(points, center, scale_px, rot_deg, input_size_wh, udp=False):
    """Map points (..., 2) from input-crop pixels back to image pixels, undoing the rotation too.

    This is the inverse of the crop made with the same arguments (the official
    ``transform_preds`` is the special case ``rot_deg=0``, which is why it cannot be used for
    rotation TTA).
    """
    mat = get_affine_transform(center, scale_px, rot_deg, input_size_wh, inv=True, udp=udp)
    return affine_points(points, mat)


def compose_affine(outer, inner):
    """(2, 3) matrix of ``outer(inner(p))``."""
    outer3 = np.vstack([outer, [0.0, 0.0, 1.0]])
    inner3 = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (outer3 @ inner3)[:2]


def hflip_matrix(image_width):
    """(2, 3) matrix of the horizontal image flip ``x -> width - 1 - x``."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def flip_image(image):
    """Horizontal flip of an (H, W, ...) image (contiguous copy)."""
    return np.ascontiguousarray(image[:, ::-1])


def flip_joints(joints, image_width, flip_pairs=COCO_FLIP_PAIRS):
    """Official ``fliplr_joints``: x -> width - 1 - x and left/right swapped.

    Args:
        joints: (K, D) with x in column 0 (D >= 2; extra columns such as visibility are carried).
        image_width: width of the image the joints live in.
    Returns:
        (K, D) float64 copy.
    """
    out = np.array(joints, dtype=np.float64, copy=True)
    out[:, 0] = image_width - 1.0 - out[:, 0]
    return swap_flip_pairs(out, flip_pairs, axis=0)


def flip_center(center, image_width):
    """Box centre under the horizontal flip (official ``c[0] = width - c[0] - 1``)."""
    c = np.array(center, dtype=np.float64, copy=True)
    c[0] = image_width - 1.0 - c[0]
    return c


def half_body_center_scale(joints, visible, input_size_wh, rng, upper_ids=COCO_UPPER_BODY_IDS,
                           upper_prob=OFFICIAL_HALF_BODY_UPPER_PROB, padding=1.5):
    """Official half-body box: centre and pixel scale of the upper or lower body, or None.

    Picks the upper body with probability ``upper_prob`` if it has more than 2 labelled joints,
    otherwise the lower body if it has more than 2, otherwise the upper one; returns None when
    the chosen part has fewer than 2 joints. The box is the joints' min/max extent, centred at
    the joints' mean, enlarged to the input aspect ratio and by ``padding`` (1.5 officially).
    The caller decides *whether* to apply it (probability, minimum number of joints).

    Args:
        joints: (K, >=2) joint coordinates in image pixels.
        visible: (K,) bool/float, labelled joints (> 0).
        rng: ``np.random.Generator``.
    Returns:
        (center (2,), scale_px (2,)) float64, or None.
    """
    joints = np.asarray(joints, dtype=np.float64)[:, :2]
    vis = np.asarray(visible) > 0
    is_upper = np.zeros(len(joints), dtype=bool)
    is_upper[list(upper_ids)] = True
    upper, lower = joints[vis & is_upper], joints[vis & ~is_upper]
    if rng.random() < upper_prob and len(upper) > 2:
        sel = upper
    else:
        sel = lower if len(lower) > 2 else upper
    if len(sel) < 2:
        return None
    center = sel.mean(axis=0)
    w, h = sel.max(axis=0) - sel.min(axis=0)
    aspect = float(input_size_wh[0]) / float(input_size_wh[1])
    w, h = _fix_aspect(w, h, aspect)
    if w <= 0 or h <= 0:
        return None
    return center, np.array([w, h], dtype=np.float64) * padding
