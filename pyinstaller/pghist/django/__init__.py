"""pghist for Django projects (``pip install 'pghistory[django]'``).

Migration operations: :mod:`pghist.django.operations` (``Track``, ``Untrack``, ``Sync``,
``InstallPghistory``).
"""

from __future__ import annotations

from . import operations as operations  # migration operations; connects the sync-after-migrate step
