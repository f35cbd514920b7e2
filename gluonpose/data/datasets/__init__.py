"""Dataset readers onto COCO-17 person records, the combined dataset and the factory."""
from .aic import AicKeypoints
from ...errors import DatasetError
from .base import KeypointReader
from .coco import CocoKeypoints, CocoStyleReader, CrowdPoseKeypoints
from .combined import CombinedDataset
from .factory import build_dataset, dataset_types
from .mpii import MpiiKeypoints

__all__ = ["AicKeypoints", "CocoKeypoints", "CocoStyleReader", "CombinedDataset",
           "CrowdPoseKeypoints", "DatasetError", "KeypointReader", "MpiiKeypoints",
           "build_dataset", "dataset_types"]
