"""``python -m agentd.cli``: the agentd command; ``--reference`` prints docs/cli.md."""

import sys

from agentd.cli import main
from agentd.cli.reference import reference

if sys.argv[1:] == ["--reference"]:
    print(reference(), end="")
    raise SystemExit(0)
raise SystemExit(main())
