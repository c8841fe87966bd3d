"""A small threaded HTTP server for the sample site, on 127.0.0.1 only.

Also serves any folder given as `static` under /static/, byte for byte (the tests use it for
real captured feeds in odd encodings).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from crawler.samplesite import render

ROBOTS = b"User-agent: *\nDisallow: /members/\n"
LAST_MODIFIED = "Mon, 02 Nov 2026 08:00:00 GMT"
_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml", ".xml": "application/xml"}


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections when a crawler opens dozens at once,
    # and each dropped one then waits a second or more for TCP to retry
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up (a crawler cancelling an oversized page): not news
        super().handle_error(request, client_address)


class SampleSite:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, static: Path | None = None):
        self.static = static
        self.hits: Counter[str] = Counter()
        # path -> answers to give before the real one: (status, headers), for fault tests
        self.faults: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.conditional_hits: Counter[str] = Counter()
        # path -> handler(query) -> (status, content type, body[, headers]): replayed API
        # responses and hostile pages in tests
        self.routes: dict[str, Callable[[dict[str, list[str]]], tuple]] = {}
        self.requests: list[tuple[float, str, dict[str, list[str]]]] = []  # (time, path, query)
        self.page_delay = 0.0  # seconds before each article page is answered (slow-site tests)
        # cleared, article pages wait (up to two minutes) until it is set again
        self.pages_open = threading.Event()
        self.pages_open.set()
        self._server = _Server((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def feed_url(self, name: str) -> str:
        return f"{self.url}/feeds/{render.FEEDS[name]}"

    def start(self) -> SampleSite:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SampleSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def route(self, path: str) -> tuple[int, str, bytes]:
        base = self.url
        if path == "/robots.txt":
            return 200, "text/plain", ROBOTS
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", render.index_page().encode()
        if path == "/sitemap_index.xml":
            return 200, "application/xml", render.sitemap_index(base)
        if path.startswith("/sitemaps/") and path[len("/sitemaps/"):-4] in render.SITEMAPS:
            return 200, "application/xml", render.sitemap(base, path[len("/sitemaps/"):-4])
        if path.startswith("/feeds/"):
            for name, filename in render.FEEDS.items():
                if path == f"/feeds/{filename}":
                    kind = _TYPES[Path(filename).suffix]
                    return 200, f"{kind}; charset=utf-8", render.feed(base, name)
        for story in render.stories():
            if path == story.page_path and story.page:
                html = render.article_page(base, story)
                return 200, "text/html; charset=utf-8", html.encode()
        if self.static and path.startswith("/static/"):
            target = (self.static / path[len("/static/") :]).resolve()
            if target.is_file() and self.static.resolve() in target.parents:
                return 200, _TYPES.get(target.suffix, "application/xml"), target.read_bytes()
        return 404, "text/html; charset=utf-8", b"<h1>Not found</h1>"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                path = parts.path
                site.hits[path] += 1
                site.requests.append((time.monotonic(), path, parse_qs(parts.query)))
                if site.faults.get(path):
                    status, headers = site.faults[path].pop(0)
                    self._answer(status, "text/plain", b"try later", headers)
                    return
                if "/articles/" in path:
                    site.pages_open.wait(120)
                    if site.page_delay:
                        time.sleep(site.page_delay)
                extra: dict[str, str] = {}
                if path in site.routes:
                    status, content_type, body, *more = site.routes[path](parse_qs(parts.query))
                    extra = more[0] if more else {}
                else:
                    status, content_type, body = site.route(path)
                headers = {}
                if extra:
                    self._answer(status, content_type, body, extra)
                    return
                if status == 200 and path != "/robots.txt":
                    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                    headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
                    if self.headers.get("If-None-Match") == etag:
                        site.conditional_hits[path] += 1
                        self._answer(304, content_type, b"", headers)
                        return
                self._answer(status, content_type, body, headers)

            def _answer(self, status: int, content_type: str, body: bytes,
                        headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the crawler's own log says what happened

        return Handler


def main() -> None:
    """`python -m crawler.samplesite.server [PORT]`: serve the sample site until Ctrl-C."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8799
    site = SampleSite(port=port)
    print(f"sample site at {site.url} (feeds: {', '.join(site.feed_url(n) for n in render.FEEDS)})")
    try:
        site._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
