"""``python -m agentd.config --reference``: print docs/config.md; ``--check FILE``: fail
(exit 1, one line) when FILE is not what the models would write."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentd.config.reference import reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentd.config", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", action="store_true", help="print the config reference")
    group.add_argument("--check", metavar="FILE", help="fail when FILE is stale")
    args = parser.parse_args(argv)
    text = reference()
    if args.reference:
        sys.stdout.write(text)
        return 0
    path = Path(args.check)
    if not path.is_file() or path.read_text() != text:
        print(f"{path} is stale: regenerate it with `make config-docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
