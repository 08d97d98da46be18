"""``python -m vbench``: the command line (:mod:`vbench.commands`)."""

import sys

from vbench.commands import main

sys.exit(main())
