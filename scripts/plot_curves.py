#!/usr/bin/env python
"""Compare training runs on one figure (loss, learning rate, validation AP; best epochs marked).

Same as ``gluonpose-curves`` (gluonpose/tools/curves.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.curves import main

if __name__ == "__main__":
    sys.exit(main())
