"""Person boxes from a GluonCV detector whose weights are already on this machine (never downloads).

GluonCV's model store keeps pretrained weights as ``<root>/<name>-<short sha1>.params`` with
``root = ~/.mxnet/models`` (e.g. ``~/.mxnet/models/yolo3_darknet53_coco-09767802.params``). The
detector is built with random weights (``pretrained=False, pretrained_base=False``) and that file is
loaded into it, so no code path can try the network. ``gluoncv`` is imported only here, lazily.
"""
import os

import numpy as np

from ..errors import ConfigError, MissingDependencyError, MissingFileError

DEFAULT_ROOT = os.path.join("~", ".mxnet", "models")

#: input short side of GluonCV's test presets per detector family
_PRESETS = (("yolo3", "yolo", 416), ("ssd_300", "ssd", 300), ("ssd_512", "ssd", 512),
            ("center_net", "center_net", 512), ("faster_rcnn", "rcnn", 600))


class MissingDetectorWeights(MissingFileError):
    """The detector's weights file is not in the model-store folder; the message says how to get it."""


def _model_store():
    try:
        from gluoncv.model_zoo import model_store  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise MissingDependencyError("--detector needs gluoncv (pip install -e '.[detector]'); or pass "
                          "person boxes with --boxes det.json") from err
    return model_store


def _model_store_zoo():
    _model_store()  # a clear error when gluoncv is missing
    from gluoncv import model_zoo  # pylint: disable=import-outside-toplevel
    return model_zoo


def detector_names():
    """GluonCV detection models trained on COCO or VOC (both have a 'person' class)."""
    prefixes = tuple(p for p, _, _ in _PRESETS)
    # pylint: disable=protected-access
    return sorted(k for k in _model_store()._model_sha1
                  if k.startswith(prefixes) and k.endswith(("_coco", "_voc")))


def detector_weights_path(name, root=None):
    """Where GluonCV's model store keeps ``name``'s weights: ``<root>/<name>-<short hash>.params``."""
    names = detector_names()
    if name not in names:
        raise ConfigError("unknown GluonCV detector %r; person detectors: %s" % (name, ", ".join(names)))
    root = os.path.expanduser(root or DEFAULT_ROOT)
    return os.path.join(root, "%s-%s.params" % (name, _model_store().short_hash(name)))


def check_detector_weights(name, root=None):
    """Path of the weights file; :class:`MissingDetectorWeights` explaining how to get it if absent."""
    path = detector_weights_path(name, root)
    if os.path.isfile(path):
        return path
    file_name = os.path.basename(path)
    raise MissingDetectorWeights(
        "GluonCV detector weights for %r are not on this machine: expected %s (gluonpose never "
        "downloads). On a machine with internet access run\n"
        "    python -c \"import gluoncv; gluoncv.model_zoo.get_model('%s', pretrained=True)\"\n"
        "which saves ~/.mxnet/models/%s; copy that file to %s here (or point --detector-root at "
        "the folder holding it). Or give person boxes instead with --boxes det.json (COCO results "
        "format)." % (name, path, name, file_name, os.path.dirname(path)))


def _preset(name):
    for prefix, family, short in _PRESETS:
        if name.startswith(prefix):
            return family, short
    raise ValueError("no test preset for detector %r" % (name,))


class PersonDetector:
    """A GluonCV detector returning person boxes.

    Args:
        name: GluonCV model name (``yolo3_darknet53_coco``, ``faster_rcnn_resnet50_v1b_coco`` ...).
        ctx: mx.Context (default CPU). root: model-store folder (default ``~/.mxnet/models``).
        score_thr: minimum person score. short: input short side (default: GluonCV's preset).
        weights: explicit .params file (default: the model-store file of ``name``).
    """

    def __init__(self, name, ctx=None, root=None, score_thr=0.5, short=None, weights=None):
        import mxnet as mx  # pylint: disable=import-outside-toplevel

        from ..models.weights import load_params_checked  # pylint: disable=import-outside-toplevel

        model_zoo = _model_store_zoo()

        path = weights or check_detector_weights(name, root)
        self.ctx = ctx or mx.cpu()
        self.net = model_zoo.get_model(name, pretrained=False, pretrained_base=False)
        load_params_checked(self.net, path, ctx=self.ctx, what="detector weights", model=name)
        if "person" not in self.net.classes:
            raise ConfigError("detector %s has no 'person' class" % name)
        self.person = self.net.classes.index("person")
        self.family, default_short = _preset(name)
        self.short = int(short or default_short)
        self.score_thr = float(score_thr)
        self.name = name

    def __call__(self, image_rgb):
        """(H, W, 3) uint8 RGB -> (boxes (N, 4) ``[x, y, w, h]`` image px float64, scores (N,))."""
        import mxnet as mx  # pylint: disable=import-outside-toplevel
        from gluoncv.data.transforms import presets  # pylint: disable=import-outside-toplevel

        preset = getattr(presets, self.family)
        kwargs = {"max_size": 1000} if self.family == "rcnn" else {}
        x, resized = preset.transform_test(mx.nd.array(image_rgb), short=self.short, **kwargs)
        ids, scores, boxes = self.net(x.as_in_context(self.ctx))[:3]
        ids, scores, boxes = (a[0].asnumpy().reshape(-1, *a.shape[2:]) for a in (ids, scores, boxes))
        keep = (ids.reshape(-1) == self.person) & (scores.reshape(-1) >= self.score_thr)
        xyxy = boxes.reshape(-1, 4)[keep].astype(np.float64)
        sx = image_rgb.shape[1] / float(resized.shape[1])
        sy = image_rgb.shape[0] / float(resized.shape[0])
        xyxy *= np.array([sx, sy, sx, sy])
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        ok = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        return xywh[ok], scores.reshape(-1)[keep][ok].astype(np.float64)
