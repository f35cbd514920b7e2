#!/usr/bin/env python
"""Train a (Multi-Stage) HRNet pose network.

Same as ``gluonpose-train`` (gluonpose/tools/train.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.train import main

if __name__ == "__main__":
    sys.exit(main())
