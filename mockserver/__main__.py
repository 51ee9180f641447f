"""``python -m mockserver`` is the ``rokt-mock`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
