"""Networks: HRNet blocks and backbone, Multi-Stage HRNet, heads, model zoo, official weights."""
from .multistage import MultiStageHRNet, PoseHRNet
from .zoo import get_model, get_model_list

__all__ = ["MultiStageHRNet", "PoseHRNet", "get_model", "get_model_list"]
