"""Evaluation: top-down inference, flip test, TTA and ensembles, OKS-NMS, COCO keypoint AP.

Main entry points (see the modules for the rest):

* :func:`evaluate_model` (``runner``): AP of one net on a COCO-style ground truth (GT or detected
  boxes); :func:`make_validate_hook` builds the training loop's ``validate(net, epoch)``.
* :class:`TopDownPredictor`, :func:`predict_records` (``inference``): batched inference.
* :func:`tta_views`, :func:`fuse` (``tta``): rotation x scale grids and (member, view) fusion.
* :func:`evaluate_keypoints`, :func:`nms_per_image` (``coco_metric``): pycocotools and OKS-NMS.
"""
from .coco_metric import evaluate_keypoints, format_stats_table, nms_per_image, write_coco_results
from .inference import TopDownPredictor, TopDownResult, predict_records
from .runner import evaluate_model, make_validate_hook
from .tta import fuse, tta_views

__all__ = ["TopDownPredictor", "TopDownResult", "evaluate_keypoints", "evaluate_model",
           "format_stats_table", "fuse", "make_validate_hook", "nms_per_image", "predict_records",
           "tta_views", "write_coco_results"]
