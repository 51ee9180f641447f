"""An app built from ``ROKT_MOCK_*`` variables, for external WSGI servers only.

``gunicorn 'mockserver.wsgi:app'`` works; everything else calls :func:`create_app` with
explicit settings.
"""

from __future__ import annotations

import os

from .app import create_app
from .settings import load

app = create_app(load(environ=os.environ))
