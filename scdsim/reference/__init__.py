"""The papers' reference numbers, typed once, as data.

Every number here is copied from a paper's table or from a derivation of the project's theory
notes (docs/theory.md), never from scdsim's output. ``scdsim theory`` (``scdsim.checks``) turns
each into a row, the tests read them, and the README's example prints some of them next to what
scdsim computes. Pairs are stored with roles (target, draft): the papers of Yin et al. write q
for the target and p for the draft, and are converted here once.

Each constant is a tuple of plain rows or a dict, documented where it is defined; ``SOURCES``
names the origin of each.

>>> from scdsim import reference
>>> reference.YIN_EXAMPLE["expected_rejections"]
1.0514
"""

from scdsim.reference.values import *  # noqa: F401,F403
from scdsim.reference.values import __all__  # noqa: F401
