"""`python -m crownguard.engine.cli`: the same as the `crownguard` command."""

import sys

from .app import main

sys.exit(main())
