"""python -m services.synthesis: the synthesis server (container entry point; imagetrust-server synthesis)."""

import sys

from services.main import main

sys.exit(main(prog="python -m services.synthesis", service="synthesis"))
