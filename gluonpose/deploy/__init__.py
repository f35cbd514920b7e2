"""Deployment: export (symbol + params, ONNX), person detectors and the image / video demo glue."""
