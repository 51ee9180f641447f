"""The rokt-mock contract kit: property-based tests that judge a partner's sender.

Modules: ``strategies`` (hypothesis generators), ``judge`` and ``properties`` (the verdict),
``runner`` and ``kit`` (running cases), ``plugin`` (pytest), ``mock`` (a mock process handle).
Names are imported lazily so that loading the pytest plugin costs nothing until it is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MockServer"]


def __getattr__(name: str) -> Any:
    if name == "MockServer":
        from .mock import MockServer

        return MockServer
    raise AttributeError(name)
