"""An HTTP proxy in front of the real S3 server that injects faults on chosen requests.

The client talks HTTP to this proxy exactly as to S3; matching requests get a 500/503, or the
connection is dropped halfway through the request body (an upload) or the response body (a
download). Nothing inside the code under test is patched.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "expect"}


@dataclass
class Fault:
    method: str
    path: str  # regex searched in the request path (with query)
    kind: str  # "500", "503", "drop-request", "drop-response"
    times: int = 1
    hits: int = 0


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _fault(self) -> Fault | None:
                with proxy.lock:
                    proxy.requests.append((self.command, self.path))
                    for fault in proxy.faults:
                        if (
                            fault.method == self.command
                            and re.search(fault.path, self.path)
                            and fault.hits < fault.times
                        ):
                            fault.hits += 1
                            return fault
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fault = self._fault()
                if fault is not None and fault.kind == "drop-request":
                    self.rfile.read(length // 2)
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self.rfile.read(length) if length else b""
                if fault is not None and fault.kind in ("500", "503"):
                    message = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    if fault.kind == "503":
                        message = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(int(fault.kind))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault is not None and fault.kind == "drop-response" and self.command != "HEAD":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, method: str, path: str, kind: str, times: int = 1) -> Fault:
        fault = Fault(method, path, kind, times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
