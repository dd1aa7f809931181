"""``python -m hpo_lightning`` runs the command line."""

import sys

from hpo_lightning.cli import main

if __name__ == "__main__":
    sys.exit(main())
