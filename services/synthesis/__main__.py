"""python -m services.synthesis: the same as `imagetrust serve synthesis` (container entry point)."""

import sys

from imagetrust.cli import main

sys.exit(main(["serve", "synthesis", *sys.argv[1:]]))
