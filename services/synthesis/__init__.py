"""Synthesis (compositing/manipulation) detection service."""

import pathlib

# The trained default model, loaded when SynthesisConfig.model_path is empty. Until the
# training pipeline ships this file, the service falls back to a clearly labelled,
# untrained placeholder (responses say placeholder=true, and a WARNING is logged).
DEFAULT_MODEL_PATH = pathlib.Path(__file__).resolve().parent / "weights" / "default.pt"
