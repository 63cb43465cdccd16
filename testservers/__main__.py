"""python -m testservers: see ``python -m testservers --help``."""

import sys

from ._cli import main

sys.exit(main())
