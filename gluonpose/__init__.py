"""gluonpose: Multi-Stage HRNet top-down human pose estimation on Apache MXNet 1.9 / Gluon."""
__version__ = "0.1.0"


def get_model(name, **kwargs):
    """GluonCV-style model constructor; see :func:`gluonpose.models.zoo.get_model`."""
    from .models.zoo import get_model as _get_model
    return _get_model(name, **kwargs)
