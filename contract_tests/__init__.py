"""The rokt-mock contract kit: property-based tests that judge a partner's sender.

For now it holds :mod:`contract_tests.mock`, the handle on a running mock that the project's
own tests and, later, the kit's pytest plugin share.
"""

from __future__ import annotations

from .mock import MockServer

__all__ = ["MockServer"]
