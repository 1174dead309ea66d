"""Serve this folder on 127.0.0.1 with the headers that make the page cross-origin isolated
(COOP/COEP), so ONNX Runtime Web may use WebAssembly threads. Standard library only.

    python serve.py [--port 8000] [--no-isolation]

Any static web server works too (`python -m http.server`); without these headers the page runs one
thread. Written by `ddpm-deploy export-web`.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path

TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
}
# nothing off this origin: scripts, workers, fetches and images all come from the page's folder
# (index.html carries the same policy as a meta tag, for any other static server)
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
    "connect-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)


class Handler(http.server.SimpleHTTPRequestHandler):
    isolated = True
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make_server(folder: str | Path, port: int = 0, isolated: bool = True, quiet: bool = False):
    """A ThreadingHTTPServer for ``folder`` on 127.0.0.1 (port 0: any free port); not started."""
    handler = type("FolderHandler", (Handler,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(handler, directory=str(folder))
    )
    server.quiet = quiet
    return server


def start(folder: str | Path, isolated: bool = True) -> tuple[http.server.HTTPServer, str]:
    """Serve ``folder`` in a background thread; returns the server and its base URL."""
    server = make_server(folder, 0, isolated, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-isolation", action="store_true", help="no COOP/COEP: one thread")
    args = parser.parse_args()
    server = make_server(Path(__file__).resolve().parent, args.port, not args.no_isolation)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
