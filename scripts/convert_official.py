#!/usr/bin/env python
"""Convert an official HRNet checkpoint into a gluonpose .params file.

Same as ``gluonpose-convert`` (gluonpose/tools/convert.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.convert import main

if __name__ == "__main__":
    sys.exit(main())
