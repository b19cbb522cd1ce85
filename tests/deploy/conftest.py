"""Fixtures for tests/deploy: each overlay, rendered once by a real kustomize."""

from __future__ import annotations

import pytest

from .manifests import OVERLAYS, render


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


@pytest.fixture
def docs(overlay) -> list[dict]:
    return render(overlay)
