#!/usr/bin/env python
"""Browse a config's training samples after augmentation (contact sheet PNG).

Same as ``gluonpose-browse`` (gluonpose/tools/browse.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.browse import main

if __name__ == "__main__":
    sys.exit(main())
