#!/usr/bin/env python
"""Draw predicted poses on an image, a folder of images or a video.

Same as ``gluonpose-demo`` (gluonpose/tools/demo.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.demo import main

if __name__ == "__main__":
    sys.exit(main())
