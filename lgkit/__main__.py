"""``python -m lgkit`` (used by ``torchrun -m lgkit grads ...``)."""

import sys

from .cli import main

sys.exit(main())
