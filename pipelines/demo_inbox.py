"""A webhook receiver on loopback for `seamless demo-loop`: the loop's promotions,
rejections, rollbacks and drift verdicts reach it as they would reach a team's webhook,
and land in `<workspace>/notifications/demo-inbox.jsonl` for the loop to show."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from components.common.durable import append_lines

INBOX_NAME = "demo-inbox"
INBOX_URL_ENV = "SEAMLESS_DEMO_INBOX_URL"
"""Where the loop's steps find the inbox; unset after the loop, so an event sent later from
this workspace goes to its dead-letter file, with the reason."""


class Inbox:
    """A threaded HTTP server on 127.0.0.1 that appends every POSTed JSON body to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with lock:  # events name models and reasons: the file is private
                    append_lines(path, [json.dumps(event)])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # the loop prints its own lines
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/seamless-events"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def config_with_inbox(config_path: Path, out: Path) -> Path:
    """`config_path` with the demo inbox among its receivers, written to `out`; the
    config itself when it has the inbox already (a second loop in the same workspace)."""
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    notifications = data.setdefault("notifications", {}) or {}
    data["notifications"] = notifications
    receivers = notifications.setdefault("receivers", [])
    if any(r.get("name") == INBOX_NAME for r in receivers):
        return config_path
    receivers.append({"name": INBOX_NAME, "kind": "webhook", "url_env": INBOX_URL_ENV})
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {config_path} with the demo loop's webhook inbox (seamless demo-loop)\n"
    out.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def event_line(event: dict[str, Any]) -> str:
    """One inbox event as the loop prints it."""
    kind = str(event.get("event", "?"))
    subject = " ".join(
        str(event[k]) for k in ("model", "version") if event.get(k) not in (None, "")
    )
    reason = str(event.get("reason") or "")
    return f"{kind:<18} {subject:<18} {reason[:110]}"
