"""``python -m toolgen``: the same as the ``toolgen`` console script."""

from toolgen.cli import main

if __name__ == "__main__":
    main()
