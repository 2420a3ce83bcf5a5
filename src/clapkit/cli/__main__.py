"""``python -m clapkit.cli``: the same as the ``clapkit`` command."""
import sys

from . import main

sys.exit(main())
