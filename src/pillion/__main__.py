"""``python -m pillion``: the same as the ``pillion`` console script."""

from pillion._entry import main

if __name__ == "__main__":
    main()
