"""A loopback HTTP server for the source tests and ``benchmarks/sources_bench.py``: serves a folder
(with directory listings and byte ranges), answers 500 to the first two GETs of any path containing
``flaky``, and can add a fixed delay to every answer (a slow store)."""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _Handler(SimpleHTTPRequestHandler):
    counts: Counter
    delay: float = 0.0

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.counts[self.path] += 1
        if self.delay:
            threading.Event().wait(self.delay)
        if "flaky" in self.path and self.counts[self.path] <= 2:
            self.send_error(500, "flaky on purpose")
            return
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if match is None:
            super().do_GET()
            return
        path = self.translate_path(self.path)
        with open(path, "rb") as f:
            f.seek(int(match[1]))
            data = f.read(int(match[2]) - int(match[1]) + 1)
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # socketserver's 5 drops concurrent connects (a 1 s SYN retry)
    daemon_threads = True


class LoopbackServer:
    """``with LoopbackServer(folder) as url:`` serves ``folder`` at ``url`` (127.0.0.1, a free
    port); ``.counts`` holds the GETs per path."""

    def __init__(self, folder, delay: float = 0.0) -> None:
        self.counts: Counter = Counter()
        handler = type("Handler", (_Handler,), {"counts": self.counts, "delay": delay})
        self.httpd = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def served_in_subprocess(folder, delay: float = 0.0) -> Iterator[str]:
    """``with served_in_subprocess(folder) as url:`` the same server in its own process (no
    share of this process's GIL, as a real store)."""
    proc = subprocess.Popen([sys.executable, __file__, str(folder), str(delay)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    server = LoopbackServer(sys.argv[1], delay=float(sys.argv[2]))
    print(server.url, flush=True)
    server.httpd.serve_forever()
