"""Metadata forensics (EXIF, JPEG structure) and the reuse registry."""
