#!/usr/bin/env python
"""Export a trained model (symbol + params, ONNX).

Same as ``gluonpose-export`` (gluonpose/tools/export.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
