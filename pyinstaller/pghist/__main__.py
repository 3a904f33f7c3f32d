"""``python -m pghist``: the ``pghistory`` command."""

from .cli import main

raise SystemExit(main())
