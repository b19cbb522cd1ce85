"""The server runtime shared by the gateway, metadata and synthesis services.

Config, health, reflection, metrics, logging, limits and image decoding live here once, so
the three services differ only in their servicers and domain code.
"""
