"""`python -m jupyter_serve`: the same as the `jupyter-serve` command."""

from jupyter_serve.cli import main

raise SystemExit(main())
