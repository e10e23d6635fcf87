"""`python -m tui`: the same as `p2pnode tui`."""

import sys

from p2pnode.cli.main import main

sys.exit(main(["tui", *sys.argv[1:]]))
