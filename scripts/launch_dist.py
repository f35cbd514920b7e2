#!/usr/bin/env python
"""Launch a distributed (ps-lite KVStore) MXNet job.

Same as ``gluonpose-launch`` (gluonpose/tools/launch.py); needs gluonpose installed (``pip install -e .``).
"""
import sys

from gluonpose.tools.launch import main

if __name__ == "__main__":
    sys.exit(main())
