"""`python -m p2pnode.cli`: the same as the `p2pnode` command."""

import sys

from p2pnode.cli.main import main

sys.exit(main())
