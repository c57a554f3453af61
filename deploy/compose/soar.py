"""A stand-in SOAR for deploy/docker-compose.yml.

Accepts mdbridge's webhook POSTs on :8080/hook, checks the Standard Webhooks
signature with HOOK_SECRET (whsec_ + base64), answers 204 and appends the
events to /data/events.ndjson; a bad signature gets 401. It is a demo
receiver, not a product: one thread, no replay window.
"""

import base64
import hashlib
import hmac
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = base64.b64decode(os.environ["HOOK_SECRET"].removeprefix("whsec_"))
OUT = os.environ.get("SOAR_OUT", "/data/events.ndjson")


def signed(headers, body):
    msg = b".".join([headers.get("webhook-id", "").encode(), headers.get("webhook-timestamp", "").encode(), body])
    want = base64.b64encode(hmac.new(KEY, msg, hashlib.sha256).digest()).decode()
    for sig in headers.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return True
    return False


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/hook":
            self.send_response(404)
        elif not signed(self.headers, body):
            self.send_response(401)
        else:
            events = json.loads(body) if body.startswith(b"[") else [json.loads(l) for l in body.splitlines() if l]
            with open(OUT, "a", encoding="utf-8") as f:
                for ev in events:
                    f.write(json.dumps(ev, separators=(",", ":")) + "\n")
            self.send_response(204)
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", int(os.environ.get("SOAR_PORT", "8080"))), Hook).serve_forever()
