"""A small HTTP server on 127.0.0.1 for download tests, run as its own process.

Usage: ``python slow_server.py FOLDER``; prints ``PORT <n>`` once listening. The first path part picks
how the files of FOLDER are served, so one server covers every case without shared state:

- ``/ok/NAME``: the file, at once.
- ``/slow/NAME``: the file in 4 kB pieces, 10 ms apart (about 400 kB/s), for cancel and close tests.
- ``/cut/NAME``: announces the full length, sends half, hangs up.
- ``/bad/NAME``: the file with its bytes changed (a checksum mismatch), same length.
- anything else: 404.

A separate process keeps the test process free of server threads, so the tests can count theirs.
"""
from __future__ import annotations

import http.server
import sys
import time
from pathlib import Path


class Handler(http.server.BaseHTTPRequestHandler):
    folder: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("ok", "slow", "cut", "bad"):
            self.send_error(404)
            return
        mode, name = parts
        path = self.folder / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if mode == "bad":
            body = bytes(b ^ 0x5A for b in body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "cut":
                self.wfile.write(body[: len(body) // 2])
            elif mode == "slow":
                for start in range(0, len(body), 4096):
                    self.wfile.write(body[start:start + 4096])
                    self.wfile.flush()
                    time.sleep(0.01)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cancelled: expected

    def log_message(self, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass


def _exit_with_parent(parent: int) -> None:
    """A test run killed before its teardown must not leave this server behind (bounded, self-stopping)."""
    import os

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    import os
    import threading

    Handler.folder = Path(sys.argv[1])
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
