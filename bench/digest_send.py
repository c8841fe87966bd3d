"""Digest sending: S confirmed daily subscribers with varied topics (concepts, parents, searches)
over A recently added articles; `immunofeed digest send --frequency daily` builds every digest and
hands it to an SMTP server on loopback (aiosmtpd, in this process). Reports the wall time, the
digests per second and the sender's peak memory, for a small and a full subscriber count: memory
that does not grow with the subscribers is memory that is streamed, not held.

    .venv/bin/python bench/digest_send.py [--subscribers 2000,10000] [--articles 5000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.models import Subscriber  # noqa: E402
from db.session import get_engine  # noqa: E402
from tests.smtpsink import SmtpSink  # noqa: E402

BIN = Path(sys.executable).parent
SEARCH_WORDS = ("response", "survival", "toxicity", "relapse", "remission", "phase")


def _site_speed():  # the site benchmark's synthetic articles, reused
    spec = importlib.util.spec_from_file_location("site_speed", ROOT / "bench" / "site_speed.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def add_subscribers(url: str, count: int, concepts: list[tuple[str, str]], seed: int = 11) -> None:
    """COUNT active daily subscribers with 1-4 topics: popular concepts more often, one in ten
    with a search besides."""
    rng = random.Random(seed)
    popular = concepts[:300]
    weights = [1 / (rank + 1) ** 0.7 for rank in range(len(popular))]
    confirmed = datetime.now(UTC) - timedelta(days=3)
    rows = []
    for i in range(count):
        topics = list(dict.fromkeys(slug for _, slug in rng.choices(popular, weights,
                                                                    k=rng.randint(1, 4))))
        if rng.random() < 0.1:
            kind, slug = rng.choice(popular[:40])
            topics.append(f"search?q={rng.choice(SEARCH_WORDS)}&{kind}={slug}")
        rows.append({"email": f"reader{i}@example.org", "topics": topics, "frequency": "daily",
                     "status": "active", "key": secrets.token_urlsafe(24),
                     "created_at": confirmed, "confirmed_at": confirmed, "bounces": 0})
    with get_engine(url).begin() as c:
        c.execute(sa.insert(Subscriber), rows)


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass  # it has just ended
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def run_once(subscribers: int, articles: int) -> dict[str, float]:
    site_speed = _site_speed()
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
        url = f"sqlite:///{tmp}/digest.db"
        concepts = site_speed.fill(url, articles)
        add_subscribers(url, subscribers, concepts)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMMUNOFEED_")}
        env.update(IMMUNOFEED_DATABASE_URL=url, IMMUNOFEED_SMTP_URL=sink.url,
                   IMMUNOFEED_BASE_URL="https://immunofeed.example")
        started = time.perf_counter()
        server_cpu = time.process_time()
        children_before = os.times().children_user + os.times().children_system
        process = subprocess.Popen([str(BIN / "immunofeed"), "digest", "send", "--frequency",
                                    "daily"], env=env, stdout=subprocess.PIPE, text=True)
        peaks: dict[int, int] = {}  # pid -> peak resident KB (VmHWM), read as they run
        while process.poll() is None:
            for pid in [process.pid, *_children(process.pid)]:
                peaks[pid] = max(peaks.get(pid, 0), _vm_hwm_kb(pid))
            time.sleep(0.1)
        status = process.returncode
        elapsed = time.perf_counter() - started
        server_cpu = time.process_time() - server_cpu
        children = os.times()
        cpu = children.children_user + children.children_system - children_before
        output = process.stdout.read() if process.stdout else ""
        if status:
            raise SystemExit(f"digest send failed: {output}")
        sent = int(output.split()[1])
        if len(sink.messages) != sent:
            raise SystemExit(f"{sent} reported sent but the server has {len(sink.messages)}")
        return {"subscribers": subscribers, "sent": sent, "seconds": elapsed,
                "rate": sent / elapsed, "peak_mb": max(peaks.values()) / 1024,
                "processes": len(peaks), "total_mb": sum(peaks.values()) / 1024,
                "sender_cpu": cpu, "server_cpu": server_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", default="2000,10000",
                        help="comma-separated subscriber counts to run")
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args()
    print(f"{args.articles} articles added in the last day; digests to an SMTP server on "
          "loopback")
    counts = [int(n) for n in args.subscribers.split(",")]
    for count in counts:
        r = run_once(count, args.articles)
        print(f"  {r['subscribers']:>6} subscribers: {r['sent']:>6} digests sent in "
              f"{r['seconds']:6.1f} s ({r['rate']:5.0f}/s, process start included), "
              f"peak memory {r['peak_mb']:.0f} MB per process ({r['processes']} processes, "
              f"{r['total_mb']:.0f} MB in all); CPU: senders {r['sender_cpu']:.1f} s, "
              f"SMTP server {r['server_cpu']:.1f} s")


if __name__ == "__main__":
    main()
