"""python -m services.gateway: the gateway server (container entry point; imagetrust-server gateway)."""

import sys

from services.main import main

sys.exit(main(prog="python -m services.gateway", service="gateway"))
