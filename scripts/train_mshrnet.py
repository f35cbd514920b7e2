#!/usr/bin/env python
"""Train a (Multi-Stage) HRNet pose network.

Same as ``gluonpose-train`` (gluonpose/tools/train.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.train import main

if __name__ == "__main__":
    # Not sys.exit(main()): that looks sys.exit up before main() runs, i.e. before a dist kvstore
    # installs its fail-fast exit (a failing worker must not wait in ps-lite's shutdown).
    code = main()
    sys.exit(code)
