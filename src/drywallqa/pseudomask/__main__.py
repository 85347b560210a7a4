"""``python -m drywallqa.pseudomask``: see :mod:`drywallqa.pseudomask.command`."""

import sys

from drywallqa.pseudomask.command import main

sys.exit(main())
