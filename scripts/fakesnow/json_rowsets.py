"""fakesnow's HTTP server, answering query results as Snowflake JSON rowsets.

fakesnow (a Snowflake emulator on DuckDB) always answers result sets in Arrow; the
Rust client Setlist uses (snowflake-connector-rs) reads JSON rowsets, as Snowflake
sends them to clients that ask for JSON. This ASGI layer converts the one endpoint
that returns rows and passes everything else through. Usage: json_rowsets.py PORT
"""
import base64
import datetime
import json
import sys

import pyarrow as pa
import pyarrow.ipc as ipc
import uvicorn
from fakesnow.server import app as fakesnow_app

EPOCH_DAY = datetime.date(1970, 1, 1)


def json_cell(value, typ):
    """One value in the text form Snowflake's JSON rowsets use."""
    if value is None:
        return None
    if pa.types.is_struct(typ):  # TIMESTAMP_*: {epoch, fraction[, timezone]}
        text = f"{value['epoch']}.{value.get('fraction', 0):09d}"
        return f"{text} {value['timezone']}" if "timezone" in value else text
    if pa.types.is_boolean(typ):
        return "1" if value else "0"
    if pa.types.is_date(typ):
        return str((value - EPOCH_DAY).days)
    if pa.types.is_binary(typ):
        return value.hex().upper()
    return str(value)


def rowset(arrow_base64):
    if not arrow_base64:
        return []
    table = ipc.open_stream(base64.b64decode(arrow_base64)).read_all()
    columns = [[json_cell(v, c.type) for v in c.to_pylist()] for c in table.columns]
    return [list(row) for row in zip(*columns)]


def as_json(body):
    data = body.get("data") or {}
    if body.get("success") and data.get("queryResultFormat") == "arrow":
        data["rowset"] = rowset(data.pop("rowsetBase64", ""))
        data["queryResultFormat"] = "json"
        data["returned"] = len(data["rowset"])
    elif not body.get("success") and isinstance(data, dict):
        # The client wants these on errors; Snowflake always sends them.
        data.setdefault("queryId", "")
        body.setdefault("sqlState", data.get("sqlState"))
    return body


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] != "/queries/v1/query-request":
        return await fakesnow_app(scope, receive, send)
    head, parts = {}, []

    async def rewrite(message):
        if message["type"] == "http.response.start":
            head.update(message)
            return
        parts.append(message.get("body", b""))
        if message.get("more_body"):
            return
        out = json.dumps(as_json(json.loads(b"".join(parts)))).encode()
        headers = [(k, v) for k, v in head["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(out)).encode()))
        await send({**head, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    await fakesnow_app(scope, receive, rewrite)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
