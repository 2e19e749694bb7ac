"""`cnnviz` / `python -m cnnviz`: the window with no arguments, headless sub-commands otherwise."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from cnnviz.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
