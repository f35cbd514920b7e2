#!/usr/bin/env python
"""Evaluate an ensemble of pose models with test-time augmentation.

Same as ``gluonpose-ensemble`` (gluonpose/tools/ensemble.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.ensemble import main

if __name__ == "__main__":
    sys.exit(main())
