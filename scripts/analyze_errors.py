#!/usr/bin/env python
"""Keypoint error analysis of a COCO results json (Ronchi & Perona's taxonomy).

Same as ``gluonpose-analyze`` (gluonpose/tools/analyze.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.analyze import main

if __name__ == "__main__":
    sys.exit(main())
