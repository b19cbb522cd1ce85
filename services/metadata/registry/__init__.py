"""The image reuse registry: sightings of fingerprints, in Redis or an embedded SQLite file."""
