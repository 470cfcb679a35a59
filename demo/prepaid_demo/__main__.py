"""`python -m prepaid_demo` (`make demo`): the scripted story against a running `make local ARGS=--seed`."""

from __future__ import annotations

import sys

from prepaid_demo.story import main

if __name__ == "__main__":
    sys.exit(main())
