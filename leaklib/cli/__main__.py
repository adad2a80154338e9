"""``python -m leaklib.cli``: the ``leak`` command without its console script."""

import sys

from leaklib.cli import main

sys.exit(main())
