"""``python -m magma_wino.cli COMMAND ...``: the same as ``magma-wino COMMAND ...``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
