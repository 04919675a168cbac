"""``python -m paper_figures``: the ``scdsim figures`` command on its own."""

import sys

from paper_figures.cli import main

sys.exit(main())
