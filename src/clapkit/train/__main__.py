"""``python -m clapkit.train`` (and ``torchrun ... -m clapkit.train``)."""
import sys

from .main import main

sys.exit(main())
