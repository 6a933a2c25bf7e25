"""``python -m watchgate.cli``."""

import sys

from watchgate.cli.main import main

sys.exit(main())
