"""Edge mode: distil a BERT classifier, quantize it, export ONNX / TFLite / Core ML, validate each artifact, report.

Run it with ``make edge-export`` (or ``.venv-edge/bin/python -m edge``); see docs/EDGE.md.
"""
