"""`immunofeed demo` (what `make demo` runs), end to end as a user would see it."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import sqlalchemy as sa

from crawler.samplesite import render
from tests.conftest import IMMUNOFEED, TEST_DATABASE_URL, new_db_url


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers.get_content_type(), response.read().decode()


def _run_demo(cwd, port, sample_port, db_url=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMUNOFEED_")}
    if db_url:
        env["IMMUNOFEED_DATABASE_URL"] = db_url
    process = subprocess.Popen(
        [IMMUNOFEED, "demo", "--port", str(port), "--sample-port", str(sample_port)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo exited: {process.stderr.read()}")
        try:
            _get(f"http://127.0.0.1:{port}/")
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError("demo did not start serving in time")


def _stop(process):
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out, err


def test_demo_crawls_serves_and_reruns_without_duplicates(tmp_path):
    """On SQLite, as `make demo` runs with nothing set; on PostgreSQL (make test DB=postgres),
    with IMMUNOFEED_DATABASE_URL pointing there."""
    port, sample_port = _free_port(), _free_port()
    db_url = new_db_url(tmp_path) if TEST_DATABASE_URL else None
    process = _run_demo(tmp_path, port, sample_port, db_url)
    try:
        status, _, html = _get(f"http://127.0.0.1:{port}/search?q=pembrolizumab")
        assert status == 200 and "articles for “pembrolizumab”" in html
        status, kind, body = _get(f"http://127.0.0.1:{port}/feed.json?q=pembrolizumab")
        feed = json.loads(body)
        assert kind == "application/feed+json"
        assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["items"]
        _, _, everything = _get(f"http://127.0.0.1:{port}/feed.json")
        assert len(json.loads(everything)["items"]) >= 30
        # the sample site keeps serving, so "read at the source" links work during the demo
        assert _get(feed["items"][0]["external_url"])[0] == 200
    finally:
        out, _ = _stop(process)
    total = len(render.stories())
    assert f"{total} new" in out and f"http://127.0.0.1:{port}/" in out

    process = _run_demo(tmp_path, port, sample_port, db_url)
    out, _ = _stop(process)
    assert "0 new, 0 updated, 0 unchanged article(s); 0 source(s) failed; 4 not modified" in out
    engine = sa.create_engine(db_url or f"sqlite:///{tmp_path}/var/immunofeed.db")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM articles")).scalar() == total
    engine.dispose()
