"""``python -m pipeline.cli``: the ``newsradar`` command."""

import sys

from pipeline.cli.commands import main

sys.exit(main())
