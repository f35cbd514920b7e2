"""Speed measurements (``scripts/benchmark.py``): decoders, the evaluation pipeline.

Speed is measured here and reported in ``docs/benchmarks.md``, never asserted in unit tests.
"""
