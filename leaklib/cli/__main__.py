"""``python -m leaklib.cli``: the ``leak`` command without the console script."""

import sys

from leaklib.cli import main

sys.exit(main())
