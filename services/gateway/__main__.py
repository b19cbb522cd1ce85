"""python -m services.gateway: the same as `imagetrust serve gateway` (container entry point)."""

import sys

from imagetrust.cli import main

sys.exit(main(["serve", "gateway", *sys.argv[1:]]))
