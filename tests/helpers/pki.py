"""The test PKI, made with trustme: a CA, certificates it signs, and one nobody trusts.

Certificates carry both the serverAuth and clientAuth usages (trustme's leaves), which is
what the gateway needs of its client certificate towards the backends as well.
"""

from __future__ import annotations

import pathlib

import trustme


def issue(ca: trustme.CA, common_name: str, *identities: str) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a leaf signed by ca for these DNS names / IPs."""
    leaf = ca.issue_cert(*(identities or (common_name,)), common_name=common_name)
    return leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()


def ca_pem(ca: trustme.CA) -> bytes:
    return ca.cert_pem.bytes()


def write_pki(out: pathlib.Path) -> dict[str, pathlib.Path]:
    """A CA, a gateway certificate for localhost/127.0.0.1, a backend certificate for
    backends.imagetrust.internal only (so the gateway must be told which name to verify
    when it dials 127.0.0.1), a client certificate (used by callers and by the gateway
    towards its backends), and a second CA that signed nothing here. {name: PEM file}."""
    ca, other_ca = trustme.CA(), trustme.CA()
    server_cert, server_key = issue(ca, "imagetrust.internal", "localhost", "127.0.0.1", "imagetrust.internal")
    backend_cert, backend_key = issue(ca, "backends.imagetrust.internal")
    client_cert, client_key = issue(ca, "market-app", "market-app.clients.imagetrust.internal")
    files = {
        "ca": ca_pem(ca),
        "other_ca": ca_pem(other_ca),
        "server_cert": server_cert,
        "server_key": server_key,
        "backend_cert": backend_cert,
        "backend_key": backend_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }
    paths = {}
    for name, data in files.items():
        path = out / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return paths
