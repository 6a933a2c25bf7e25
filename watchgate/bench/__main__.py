"""``python -m watchgate.bench``: see :mod:`watchgate.bench.suite`."""

import sys

from watchgate.bench.suite import main

sys.exit(main())
