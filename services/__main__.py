"""python -m services SERVICE [flags]: the same as imagetrust-server (services/main.py)."""

import sys

from services.main import main

sys.exit(main(prog="python -m services"))
