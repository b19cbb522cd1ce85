"""python -m services.metadata: the same as `imagetrust serve metadata` (container entry point)."""

import sys

from imagetrust.cli import main

sys.exit(main(["serve", "metadata", *sys.argv[1:]]))
