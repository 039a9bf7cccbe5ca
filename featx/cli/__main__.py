"""``python -m featx.cli``: the ``featx`` command."""

import sys

from featx.cli.main import main

sys.exit(main())
