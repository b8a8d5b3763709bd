"""``python -m orchestrator.cli``: the ``attnmel`` command."""

import sys

from orchestrator.cli import main

sys.exit(main())
