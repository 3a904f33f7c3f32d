"""``python -m pghistory``: the ``pghistory`` command."""

from .cli import main

raise SystemExit(main())
