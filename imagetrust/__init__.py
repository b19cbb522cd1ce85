"""ImageTrust: real-time image-integrity checks for C2C marketplaces, over gRPC.

This package is what clients use: the CLI, the Python SDK (imagetrust.client) and the
generated API (imagetrust.v1, produced by scripts/gen_protos.py). The servers live in
the `services` package.
"""

__version__ = "0.1.0"
