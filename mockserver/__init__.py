"""rokt-mock: a faithful local mock of Rokt's Event API, with a journal that proves what arrived."""

from __future__ import annotations

__version__ = "0.1.0"

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "__version__", "create_app"]
