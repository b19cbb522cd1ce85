"""ImageTrust training: composite synthesis from BSDS500, recipes, evaluation, export.

Training uses the synthesis service's own model, checkpoint and preprocessing modules
(services.synthesis.*), so a trained checkpoint is served exactly as it was trained.
"""
