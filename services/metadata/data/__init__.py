"""Data tables (YAML) of the metadata service; a package so setuptools ships them."""
