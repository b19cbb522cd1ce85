"""Near-copy matching for the reuse registry: retrieval views, verification descriptors."""
