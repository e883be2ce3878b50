"""``python -m lgkit`` (used by ``torchrun -m lgkit grads ...``)."""

import sys

from lgkit.cli import main

sys.exit(main())
