"""``python -m pillion``: the same as the ``pillion`` console script."""

from pillion.cli import main

if __name__ == "__main__":
    main()
