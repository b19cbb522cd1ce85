"""Gateway fixtures: the real services on loopback, a real scripted synthesis server
(tests/helpers/scripted_synthesis.py) and the test PKI."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import grpc
import pytest

from tests.helpers.pki import write_pki
from tests.helpers.scripted_synthesis import ScriptedSynthesis


@pytest.fixture
def scripted() -> Iterator:
    started: list[ScriptedSynthesis] = []

    def factory(**kwargs) -> ScriptedSynthesis:
        server = ScriptedSynthesis(**kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The test PKI's files (tests/helpers/pki.py): ca, other_ca, server_cert/_key (localhost),
    backend_cert/_key (backends.imagetrust.internal), client_cert/_key."""
    return write_pki(tmp_path_factory.mktemp("pki"))


def rpc_code(exc: grpc.RpcError) -> grpc.StatusCode:
    return exc.code()
