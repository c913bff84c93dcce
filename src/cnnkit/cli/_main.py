"""``python -m cnnkit.cli._main``: the ``cnnkit`` command without the console script."""
from cnnkit.cli import main

if __name__ == "__main__":
    main()
