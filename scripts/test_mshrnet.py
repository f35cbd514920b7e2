#!/usr/bin/env python
"""Evaluate a pose model with COCO keypoint AP.

Same as ``gluonpose-test`` (gluonpose/tools/test.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.test import main

if __name__ == "__main__":
    sys.exit(main())
