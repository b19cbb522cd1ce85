"""python -m services.metadata: the metadata server (container entry point; imagetrust-server metadata)."""

import sys

from services.main import main

sys.exit(main(prog="python -m services.metadata", service="metadata"))
