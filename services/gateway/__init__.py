"""The gateway: fans each check out to synthesis and metadata and combines one verdict.

It never imports torch: it only speaks gRPC to the backends.
"""
