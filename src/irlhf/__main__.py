"""``python -m irlhf ...``: the ``irlhf`` command (how ``irlhf sweep`` starts each trial)."""

import sys

from irlhf.cli import main

sys.exit(main())
