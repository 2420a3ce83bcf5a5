"""``python -m clapkit.index`` and ``torchrun --nproc-per-node N -m clapkit.index FOLDER... --db DB``."""
import sys

from .main import main

sys.exit(main())
