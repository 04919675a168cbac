"""``python -m scdsim``: the same command line as the ``scdsim`` console script."""

import sys

from scdsim.cli import main

sys.exit(main())
