"""ImageTrust: real-time image-integrity checks for C2C marketplaces, over gRPC.

This package is what clients use: the CLI, the Python SDK (imagetrust.client) and the
generated API (imagetrust.v1, produced by scripts/gen_protos.py). The servers live in
the `services` package, with their own entry point (services/main.py, `imagetrust-server`);
they share only imagetrust.v1 and the channel settings in imagetrust.channel with this
package, which imports nothing from them (tests/test_import_boundaries.py).
"""

__version__ = "0.1.0"
