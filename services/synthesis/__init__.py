"""Synthesis (compositing/manipulation) detection service."""
