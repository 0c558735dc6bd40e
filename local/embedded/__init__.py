"""Embedded transformers engine: serves a local model directory inside the gateway process."""
