"""``python -m facelm`` = the ``facelm`` command (used by the Snakemake rules)."""

import sys

from facelm.cli import main

sys.exit(main())
