"""Checkpoints shipped with the package (a package so that wheels include its *.pt).

default.pt is the trained default model (produced by training/, see docs/synthesis.md);
the service loads it when no model_path is configured.
"""
