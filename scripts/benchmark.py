#!/usr/bin/env python
"""Measure speed and cost of networks, the data pipeline and training steps.

Same as ``gluonpose-benchmark`` (gluonpose/tools/benchmark.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
