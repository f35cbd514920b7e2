"""Channel layout of the heatmap + offset output, named once and used by heads, codecs, losses and TTA.

For K keypoints a heatmap+offset output has 3K channels, **blocked**:

    channels [0, K)    heatmaps (one per keypoint)
    channels [K, 2K)   x-offsets (keypoint k at channel K + k)
    channels [2K, 3K)  y-offsets (keypoint k at channel 2K + k)

A plain Gaussian-heatmap output has K channels.
"""

from ..errors import ConfigError

HEATMAP = "heatmap"
HEATMAP_OFFSET = "heatmap_offset"
LAYOUTS = (HEATMAP, HEATMAP_OFFSET)


def num_channels(layout, num_joints):
    """Number of output channels of ``layout`` for ``num_joints`` keypoints."""
    if layout == HEATMAP:
        return num_joints
    if layout == HEATMAP_OFFSET:
        return 3 * num_joints
    raise ConfigError("unknown output layout %r; valid: %s" % (layout, ", ".join(LAYOUTS)))


def split(layout, outputs, num_joints):
    """Split a (N, C, H, W) numpy array (or NDArray) into named parts.

    Returns a dict: ``{"heatmap": (N,K,H,W)}`` and, for heatmap_offset, also
    ``"offset_x"`` and ``"offset_y"`` (each (N,K,H,W)).
    """
    expected = num_channels(layout, num_joints)
    if outputs.shape[1] != expected:
        raise ValueError("layout %s with %d joints expects %d channels, got shape %s"
                         % (layout, num_joints, expected, tuple(outputs.shape)))
    k = num_joints
    parts = {"heatmap": outputs[:, :k]}
    if layout == HEATMAP_OFFSET:
        parts["offset_x"] = outputs[:, k:2 * k]
        parts["offset_y"] = outputs[:, 2 * k:3 * k]
    return parts


def merge(layout, parts):
    """Inverse of :func:`split` for numpy arrays: concatenate the parts along axis 1."""
    import numpy as np
    if layout == HEATMAP:
        return parts["heatmap"]
    return np.concatenate([parts["heatmap"], parts["offset_x"], parts["offset_y"]], axis=1)
