"""The floor of the stack: a bare Flask view that answers every POST events request with 200
``{"data":{"unprocessedRecords":[]}}`` without parsing, checking or journaling anything.

bench/compare.py serves it with the same gunicorn gthread settings as ``rokt-mock serve``
(``-k gthread --workers 2 --threads 16 --keep-alive 5``), so the gap between this and the mock
is what the mock's own work costs: auth, validation, the journal. The body is still read off
the socket (``request.get_data()``), as any server must do before answering on a keep-alive
connection.
"""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)

_ANSWER = b'{"data":{"unprocessedRecords":[]}}'


@app.post("/v1/events")
@app.post("/v2/events")
def events() -> Response:
    request.get_data()
    return Response(_ANSWER, status=200, mimetype="application/json")


@app.get("/__admin/health")
def health() -> Response:
    return Response(b'{"status":"ok"}', status=200, mimetype="application/json")
