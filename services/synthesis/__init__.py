"""Synthesis (compositing/manipulation) detection service."""

import pathlib

# The trained default model shipped in the package (training/export.py writes it), loaded
# when SynthesisConfig.model_path is empty. Should the file be missing (a source tree
# without weights), the service falls back to a clearly labelled, untrained placeholder
# (responses say placeholder=true, and a WARNING is logged).
DEFAULT_MODEL_PATH = pathlib.Path(__file__).resolve().parent / "weights" / "default.pt"
