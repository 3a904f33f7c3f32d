"""pghist for Django projects (``pip install 'pghistory[django]'``).

Migration operations: :mod:`pghist.django.operations` (``Track``, ``Untrack``, ``Sync``,
``InstallPghistory``).

Request context: ``pghist.django.ContextMiddleware`` (after ``AuthenticationMiddleware`` in
``MIDDLEWARE``) and ``pghist.django.instrument()``, from :mod:`pghist.django.middleware`,
imported on first use.
"""

from __future__ import annotations

from typing import Any

from . import operations as operations  # migration operations; connects the sync-after-migrate step

_MIDDLEWARE_NAMES = ("ContextMiddleware", "instrument")


def __getattr__(name: str) -> Any:
    if name in _MIDDLEWARE_NAMES:
        from . import middleware

        return getattr(middleware, name)
    raise AttributeError(f"module 'pghist.django' has no attribute {name!r}")
