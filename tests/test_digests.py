"""Email digests against a real SMTP server on loopback: subscribing (form and API), double
opt-in, the manage page, one-click unsubscribe, sending (headers, both parts, every link),
4xx and 5xx answers, bad addresses and floods."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from db.articles import ArticleData, upsert_article
from db.models import Article, DigestDelivery, Subscriber
from db.session import session_scope
from db.subscriptions import CONFIRMATIONS_PER_ADDRESS, confirm_subscription, secret_key
from tests.conftest import FAST, IMMUNOFEED, NOW, cli_env, run_cli
from tests.smtpsink import SmtpSink
from webapp.digest import period_key, send_digests
from webapp.mail import LinkSigner, SiteLinks, SmtpConfig, SmtpMailer
from webapp.subscribe import limiter

BASE = "http://localhost"


@pytest.fixture
def sink():
    with SmtpSink() as running:
        yield running


@pytest.fixture
def app(tagged_db: str, sink: SmtpSink):
    from webapp import create_app

    made = create_app({"TESTING": True, "DATABASE_URL": tagged_db, "SMTP_URL": sink.url,
                       "BASE_URL": BASE})
    limiter.reset()  # one limiter serves every app in this process: start each test afresh
    return made


def links_for(url: str) -> SiteLinks:
    with session_scope(url) as session:
        return SiteLinks(BASE, LinkSigner(secret_key(session)))


def send(url: str, sink: SmtpSink, frequency: str = "daily", now: datetime | None = None,
         **mailer_options):  # -> SendReport
    with SmtpMailer(SmtpConfig.from_url(sink.url), **{"backoff": 0.01, **mailer_options}) as m:
        return send_digests(url, frequency, links_for(url), m, now=now)


def subscribe(url: str, email: str, topics: list[str], frequency: str = "daily") -> int:
    with session_scope(url) as session:
        return confirm_subscription(session, email, topics, frequency).id


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the form carries no CSRF token"
    return found.group(1)


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def site_links_in(message: EmailMessage) -> set[str]:
    """Every link to the site in both parts, as paths."""
    text, html = parts(message)
    found = set(re.findall(r'href="(http://localhost[^"]*)"', html))
    found |= set(re.findall(r"(http://localhost/\S*)", text))
    return {urlsplit(link).path + ("?" + urlsplit(link).query if urlsplit(link).query else "")
            for link in found}


def confirm_path(message: EmailMessage) -> str:
    text, _ = parts(message)
    found = re.search(r"http://localhost(/subscribe/confirm/\S+)", text)
    assert found, text
    return found.group(1)


def count(url: str, model) -> int:  # noqa: ANN001
    with session_scope(url) as session:
        return len(session.scalars(select(model)).all())


# -- subscribing -------------------------------------------------------------------------------

def test_form_double_opt_in_digest_links_and_one_click_unsubscribe(app, tagged_db, sink):
    client = app.test_client()
    page = client.get("/subscribe?topic=pembrolizumab")
    assert page.status_code == 200 and "pembrolizumab" in page.text
    answer = client.post("/subscribe", data={
        "csrf_token": csrf_token(page.text), "email": " Reader@Example.ORG ",
        "topic": ["pembrolizumab", ""], "frequency": "daily"})
    assert answer.status_code == 200 and "confirmation link is on its way" in answer.text

    # double opt-in: one confirmation email, nothing stored, nothing else sent before the link
    [confirmation] = sink.messages
    assert confirmation["To"] == "reader@example.org"
    link = confirm_path(confirmation)
    assert "confirm" in link
    assert count(tagged_db, Subscriber) == 0
    assert send(tagged_db, sink).sent == 0 and len(sink.messages) == 1

    confirmed = client.get(link)
    assert confirmed.status_code == 200 and "Confirmed" in confirmed.text
    report = send(tagged_db, sink)
    assert (report.sent, report.empty) == (1, 0)
    digest = sink.messages[-1]
    assert digest["To"] == "reader@example.org"
    assert digest["From"] == "ImmunoFeed <digest@localhost>"
    assert digest["Date"] and digest["Message-ID"].startswith("<digest.daily.")
    assert digest["List-Id"] == "ImmunoFeed digest <digest.localhost>"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_part, mailto_part = [p.strip(" <>") for p in digest["List-Unsubscribe"].split(",")]
    assert https_part.startswith(BASE + "/unsubscribe/")
    assert mailto_part.startswith("mailto:digest@localhost?subject=unsubscribe%20")
    assert "3 new items" in digest["Subject"]

    text, html = parts(digest)
    for title in ("Pembrolizumab in melanoma", "Pembrolizumab in NSCLC"):
        assert title in text and title in html
    assert "Off-topic item" not in text  # filtered articles never go out
    assert "Tags: non-small cell lung cancer, pembrolizumab" in text
    assert "Unsubscribe" in text and "Unsubscribe" in html

    # every link in the mail works against the app (a fresh client: no cookies)
    reader = app.test_client()
    paths = site_links_in(digest)
    assert any(p.startswith("/subscriptions/") for p in paths)
    assert any(p.startswith("/articles/") for p in paths)
    for path in paths:
        assert reader.get(path).status_code == 200, path

    # RFC 8058: a POST without cookies unsubscribes at once and answers 200, not a redirect
    one_click = app.test_client().post(urlsplit(https_part).path,
                                       data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "unsubscribed" in one_click.text
    with session_scope(tagged_db) as session:
        assert session.scalar(select(Subscriber.status)) == "unsubscribed"
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert send(tagged_db, sink, now=tomorrow).sent == 0


def test_api_answers_202_the_same_whether_or_not_subscribed(app, tagged_db, sink):
    client = app.test_client()
    body = {"email": "member@example.org", "topics": ["melanoma"], "frequency": "weekly"}
    first = client.post("/api/v1/subscriptions", json=body)
    subscribe(tagged_db, "member@example.org", ["melanoma"], "weekly")
    second = client.post("/api/v1/subscriptions", json=body)
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert first.get_json()["status"] == "pending-confirmation"
    # a changed request from the API also waits for the owner's confirmation
    changed = client.post("/api/v1/subscriptions", json={**body, "topics": ["nivolumab"]})
    assert changed.status_code == 202
    with session_scope(tagged_db) as session:
        assert session.scalar(select(Subscriber.topics)) == ["melanoma"]
    assert app.test_client().get(confirm_path(sink.messages[-1])).status_code == 200
    with session_scope(tagged_db) as session:
        assert session.scalar(select(Subscriber.topics)) == ["nivolumab"]


def test_search_topics_are_stored_canonically_and_their_items_sent(app, tagged_db, sink):
    client = app.test_client()
    answer = client.post("/api/v1/subscriptions", json={
        "email": "searcher@example.org", "frequency": "daily",
        "topics": ["https://immunofeed.example/search?q=melanoma&therapy=nivolumab&page=3"]})
    assert answer.status_code == 202
    assert client.get(confirm_path(sink.messages[-1])).status_code == 200
    with session_scope(tagged_db) as session:
        [topic] = session.scalar(select(Subscriber.topics))
    assert topic == "search?q=melanoma&therapy=nivolumab"
    send(tagged_db, sink)
    text, _ = parts(sink.messages[-1])
    assert "Nivolumab in melanoma" in text and "Pembrolizumab" not in text


@pytest.mark.parametrize("body, status, words", [
    ({"email": "not-an-address", "topics": ["melanoma"]}, 400, "not a usable email address"),
    ({"email": "a@example.org", "topics": ["no-such-concept"]}, 400, "not a therapy"),
    ({"email": "a@example.org", "topics": []}, 400, "at least one topic"),
    ({"email": "a@example.org", "topics": "melanoma"}, 400, "must be a list"),
    ({"email": "a@example.org", "topics": ["melanoma"], "frequency": "hourly"}, 400, "daily"),
    ({"email": "x" * 400 + "@example.org", "topics": ["melanoma"]}, 400, "too long"),
    ({"email": "a@example.org", "topics": ["/search?page=abc"]}, 400, "page must be"),
    (["a list"], 400, "JSON object"),
])
def test_api_rejects_bad_requests_with_a_clear_message(app, sink, body, status, words):
    answer = app.test_client().post("/api/v1/subscriptions", json=body)
    assert answer.status_code == status
    assert words in answer.get_json()["error"]["message"]
    assert sink.messages == []


def test_api_wants_json(app):
    answer = app.test_client().post("/api/v1/subscriptions", data="email=a@example.org")
    assert answer.status_code == 415


def test_floods_are_refused_per_address_and_per_client(app, sink):
    client = app.test_client()
    body = {"email": "victim@example.org", "topics": ["melanoma"]}
    answers = [client.post("/api/v1/subscriptions", json=body) for _ in range(5)]
    assert [a.status_code for a in answers] == [202] * 5
    # the address gets a few confirmation emails, then no more (and the answer stays the same)
    assert len(sink.to("victim@example.org")) == CONFIRMATIONS_PER_ADDRESS
    sixth = client.post("/api/v1/subscriptions", json={**body, "email": "other@example.org"})
    assert sixth.status_code == 429  # five a minute from one client
    assert "error" in sixth.get_json()


@pytest.mark.parametrize("proxies", ["0", "1"])
def test_behind_a_trusted_proxy_each_reader_has_their_own_limit(tagged_db, sink, proxies):
    """Behind nginx every request comes from 127.0.0.1: with IMMUNOFEED_TRUSTED_PROXIES=1 the
    limit counts the X-Forwarded-For client; without, that header (anyone can send it) is
    ignored."""
    from webapp import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": tagged_db, "SMTP_URL": sink.url,
                      "BASE_URL": BASE, "TRUSTED_PROXIES": proxies})
    limiter.reset()
    client = app.test_client()
    codes = [client.post("/api/v1/subscriptions",
                         json={"email": f"r{i}@example.org", "topics": ["melanoma"]},
                         headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
             for i in range(7)]
    assert codes == ([202] * 7 if proxies == "1" else [202] * 5 + [429] * 2)


def test_web_workers_share_the_per_client_limit_through_redis(tagged_db, sink):
    """Two apps, as two gunicorn workers would be, counting in the real Redis on 127.0.0.1:
    the second starts where the first left off. A Redis that cannot be reached costs nothing
    but the sharing."""
    from webapp import create_app

    def worker(redis_url: str):  # noqa: ANN202
        return create_app({"TESTING": True, "DATABASE_URL": tagged_db, "SMTP_URL": sink.url,
                           "BASE_URL": BASE, "REDIS_URL": redis_url})

    def ask(app, i: int) -> int:  # noqa: ANN001
        return app.test_client().post("/api/v1/subscriptions", json={
            "email": f"shared{i}@example.org", "topics": ["melanoma"]}).status_code

    first = worker("redis://127.0.0.1:6379/15")  # a Redis database only the tests use
    # counts an earlier run left there would refuse at once (the limiter keeps the key prefix
    # of the first app in the process, so a per-test prefix would not be used): start at zero
    limiter.reset()
    assert [ask(first, i) for i in range(3)] == [202] * 3
    # a new worker starts with empty memory: only counters kept in Redis can refuse this one
    second = worker("redis://127.0.0.1:6379/15")
    assert [ask(second, i) for i in range(3, 6)] == [202, 202, 429]

    unreachable = worker("redis://127.0.0.1:9/0")
    assert ask(unreachable, 6) == 202


def test_form_without_its_csrf_token_is_refused(app, tagged_db, sink):
    answer = app.test_client().post("/subscribe", data={
        "email": "a@example.org", "topic": "melanoma", "frequency": "daily"})
    assert answer.status_code == 400
    assert sink.messages == []


def test_form_errors_are_shown_on_the_form(app):
    client = app.test_client()
    page = client.get("/subscribe")
    answer = client.post("/subscribe", data={"csrf_token": csrf_token(page.text),
                                             "email": "nobody", "topic": "melanoma"})
    assert answer.status_code == 400
    assert "not a usable email address" in answer.text and 'value="nobody"' in answer.text
    bad_topic = client.get("/subscribe?topic=<script>")
    assert bad_topic.status_code == 400 and "<script>" not in bad_topic.text


def test_confirmation_links_that_are_forged_or_expired(app, tagged_db):
    client = app.test_client()
    signer = links_for(tagged_db).signer
    token = signer.confirm_token("a@example.org", ["melanoma"], "daily")
    assert client.get("/subscribe/confirm/" + token[:-2] + "xx").status_code == 404
    with pytest.raises(Exception, match="expired|age"):
        signer.read_confirm(token, max_age=-1)
    forged = LinkSigner("another key").confirm_token("a@example.org", ["melanoma"], "daily")
    assert client.get("/subscribe/confirm/" + forged).status_code == 404
    assert count(tagged_db, Subscriber) == 0


def test_manage_page_changes_topics_frequency_and_pauses(app, tagged_db, sink):
    subscriber_id = subscribe(tagged_db, "m@example.org", ["melanoma"])
    with session_scope(tagged_db) as session:
        key = session.get(Subscriber, subscriber_id).key
    path = "/subscriptions/" + links_for(tagged_db).signer.manage_token(subscriber_id, key)
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200 and "m@example.org" in page.text
    token = csrf_token(page.text)
    saved = client.post(path, data={"csrf_token": token, "action": "save", "topic": "melanoma",
                                    "add": "nivolumab\n/search?q=NSCLC", "frequency": "weekly"})
    assert saved.status_code == 200 and "Saved" in saved.text
    with session_scope(tagged_db) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber.topics == ["melanoma", "nivolumab", "search?q=NSCLC"]
        assert subscriber.frequency == "weekly"
    bad = client.post(path, data={"csrf_token": token, "action": "save", "add": "nonsense-x"})
    assert bad.status_code == 400 and "not a therapy" in bad.text
    paused = client.post(path, data={"csrf_token": token, "action": "pause"})
    assert paused.status_code == 200
    assert send(tagged_db, sink, "weekly").sent == 0  # paused: nothing goes out
    client.post(path, data={"csrf_token": token, "action": "resume"})
    assert send(tagged_db, sink, "weekly").sent == 1
    assert client.get("/subscriptions/" + "x" * 40).status_code == 404
    no_token = app.test_client().post(path, data={"action": "unsubscribe"})
    assert no_token.status_code == 400  # CSRF
    with session_scope(tagged_db) as session:
        assert session.get(Subscriber, subscriber_id).status == "active"


# -- sending -----------------------------------------------------------------------------------

def test_each_period_once_empty_digests_skipped_and_parents_include_children(tagged_db, sink):
    subscribe(tagged_db, "lung@example.org", ["lung-cancer"])  # NSCLC is its child
    subscribe(tagged_db, "quiet@example.org", ["small-cell-lung-cancer"])  # nothing matches
    first = send(tagged_db, sink)
    assert (first.sent, first.empty) == (1, 1)
    [message] = sink.to("lung@example.org")
    text, _ = parts(message)
    assert "Pembrolizumab in NSCLC" in text and "melanoma" not in text.lower()
    assert sink.to("quiet@example.org") == []
    again = send(tagged_db, sink)
    assert (again.sent, again.skipped) == (0, 2)
    # the next day: only what was added since
    with session_scope(tagged_db) as session:
        upsert_article(session, ArticleData(
            canonical_url="http://127.0.0.1/new", url="http://127.0.0.1/new",
            title="Durvalumab in lung cancer", body=".", summary="New.",
            mentions={"lung-cancer": 1}, published_at=NOW))
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert send(tagged_db, sink, now=tomorrow).sent == 1
    text, _ = parts(sink.to("lung@example.org")[-1])
    assert "Durvalumab in lung cancer" in text and "Pembrolizumab in NSCLC" not in text


def test_long_digests_show_the_newest_items_and_link_to_the_rest(tagged_db, sink):
    from webapp.digest import ITEMS_PER_DIGEST, ITEMS_PER_TOPIC

    with session_scope(tagged_db) as session:
        for i in range(ITEMS_PER_DIGEST + 3):
            upsert_article(session, ArticleData(
                canonical_url=f"http://127.0.0.1/many{i}", url=f"http://127.0.0.1/many{i}",
                title=f"Lung item {i:02d}", body=".", summary=".", mentions={"lung-cancer": 1},
                published_at=NOW - timedelta(hours=i)))
    subscribe(tagged_db, "busy-reader@example.org",
              ["lung-cancer", "non-small-cell-lung-cancer", "melanoma", "pd-l1", "nivolumab"])
    send(tagged_db, sink)
    [message] = sink.to("busy-reader@example.org")
    text, html = parts(message)
    lung = text.split("== Lung cancer ==")[1].split("==")[0]
    shown = re.findall(r"Lung item (\d\d)", lung)
    assert shown == ["00", "01", "02", "03", "04"][:ITEMS_PER_TOPIC]  # the newest
    more = ITEMS_PER_DIGEST + 3 + 1 - ITEMS_PER_TOPIC  # with the stored NSCLC article
    assert f"...and {more} more: http://localhost/cancer/lung-cancer" in lung
    assert f"…and {more} more" in html
    # the NSCLC article is a lung-cancer article too, counted once among the digest's new items
    nsclc = text.split("== Non-small cell lung cancer ==")[1].split("==")[0]
    assert "Pembrolizumab in NSCLC" in nsclc and "Pembrolizumab in NSCLC" not in lung
    assert message["Subject"].startswith(f"ImmunoFeed daily digest: {23 + 1 + 3} new items")


def test_a_story_told_twice_is_listed_once(tagged_db, sink):
    from crawler.dedupe import signature
    from db.stories import assign_story

    body = ("The agency approved cemiplimab for advanced cutaneous squamous cell carcinoma on "
            "Tuesday, the company said in a statement. ") * 6
    with session_scope(tagged_db) as session:
        for i in range(2):  # two sites carry the same story, as a crawl would store them
            _, article_id = upsert_article(session, ArticleData(
                canonical_url=f"http://127.0.0.1/dup{i}", url=f"http://127.0.0.1/dup{i}",
                title="Cemiplimab approved for skin cancer", body=body, summary="Approved.",
                mentions={"cemiplimab": 1}, published_at=NOW))
            assign_story(session, session.get(Article, article_id), signature("", body))
    subscribe(tagged_db, "dup@example.org", ["cemiplimab"])
    send(tagged_db, sink)
    text, _ = parts(sink.to("dup@example.org")[0])
    assert text.count("Cemiplimab approved for skin cancer") == 1


def test_temporary_refusals_are_retried_then_deferred(tagged_db, sink):
    subscribe(tagged_db, "busy@example.org", ["melanoma"])
    sink.replies["busy@example.org"] = ["451 4.3.0 try later", "250 OK"]
    assert send(tagged_db, sink).sent == 1  # the retry went through
    assert len(sink.to("busy@example.org")) == 1

    subscribe(tagged_db, "down@example.org", ["melanoma"])
    sink.replies["down@example.org"] = ["452 4.2.2 mailbox full"]
    report = send(tagged_db, sink, retries=1)
    assert (report.sent, report.deferred) == (0, 1)
    with session_scope(tagged_db) as session:
        delivery = session.scalars(select(DigestDelivery).where(
            DigestDelivery.status == "pending")).one()
        assert "452" in delivery.error and delivery.attempts == 1
    del sink.replies["down@example.org"]
    assert send(tagged_db, sink).sent == 1  # the next run sends it, once
    assert len(sink.to("down@example.org")) == 1


def test_permanent_refusals_count_against_the_subscriber_and_pause_them(tagged_db, sink):
    subscriber_id = subscribe(tagged_db, "gone@example.org", ["melanoma"])
    sink.replies["gone@example.org"] = ["550 5.1.1 no such user"]
    start = datetime.now(UTC)
    for day in range(3):
        # each day brings one new melanoma item, so each digest has something to say
        when = start + timedelta(days=day)
        with session_scope(tagged_db) as session:
            _, article_id = upsert_article(session, ArticleData(
                canonical_url=f"http://127.0.0.1/m{day}", url=f"http://127.0.0.1/m{day}",
                title=f"Melanoma news {day}", body=".", summary=".",
                mentions={"melanoma": 1}, published_at=NOW))
            session.get(Article, article_id).added_at = when - timedelta(minutes=1)
        report = send(tagged_db, sink, now=when)
        assert report.failed == 1, report
    with session_scope(tagged_db) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert (subscriber.status, subscriber.paused_reason) == ("paused", "bounces")
        assert subscriber.bounces == 3 and "550" in subscriber.last_error
    assert send(tagged_db, sink, now=start + timedelta(days=3)).failed == 0
    assert sink.messages == []


def test_a_mail_server_that_is_down_stops_the_run_and_loses_nothing(tagged_db):
    for i in range(6):
        subscribe(tagged_db, f"s{i}@example.org", ["melanoma"])
    config = SmtpConfig.from_url("smtp://127.0.0.1:9?max_rate=0&timeout=2")  # nothing listens
    with SmtpMailer(config, retries=0) as mailer:
        report = send_digests(tagged_db, "daily", links_for(tagged_db), mailer)
    assert report.sent == 0 and report.stopped and "cannot reach" in report.stopped
    with SmtpSink() as sink:
        assert send(tagged_db, sink).sent == 6


def test_weekly_periods_are_iso_weeks():
    assert period_key("weekly", datetime(2026, 11, 27, tzinfo=UTC)) == "2026-W48"
    assert period_key("weekly", datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
    assert period_key("daily", datetime(2026, 11, 27, 23, 59, tzinfo=UTC)) == "2026-11-27"


# -- exactly once ------------------------------------------------------------------------------

def _start_sender(url: str, sink: SmtpSink, capture: bool = False,
                  rate: int = 0):  # -> subprocess.Popen
    import subprocess

    env = cli_env(url, SMTP_URL=sink.url.replace("max_rate=0", f"max_rate={rate}"),
                  BASE_URL=BASE)
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([IMMUNOFEED, "digest", "send", "--frequency", "daily", "--jobs",
                             "2"], env=env, stdout=output, stderr=output, text=True)


def test_killed_runs_and_reruns_send_every_digest_once(tagged_db, sink):
    """kill -9 of the command (its two sending processes die with it) at random moments, then
    while a message is being handed over (the server never accepts it), then after the server
    has accepted one but before the sender could record it; rerun after each. In the end every
    subscriber has had this period's digest, under one Message-ID: a digest caught between the
    server's 250 and the commit is sent again with the same Message-ID and content, which mail
    stores keep once."""
    import os
    import random
    import signal
    import time

    topics = [["melanoma"], ["pembrolizumab"], ["lung-cancer"], ["nivolumab", "melanoma"],
              ["/search?q=melanoma"]]
    subscribers = 40
    for i in range(subscribers):
        subscribe(tagged_db, f"reader{i}@example.org", topics[i % len(topics)])

    process = None

    def kill_at(count: int, accept: bool):  # noqa: ANN202
        def hook(kept: int) -> bool:
            if kept == count and process is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return accept
            return True
        return hook

    rng = random.Random(7)
    for _ in range(3):  # five messages a second from each sender: each run is killed part-way
        before = len(sink.received)
        process = _start_sender(tagged_db, sink, rate=5)
        deadline = time.monotonic() + 60
        while len(sink.received) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.6))
        process.kill()
        process.wait(timeout=60)
        assert before < len(sink.received) < subscribers
    for count, accept in ((len(sink.messages) + 2, False), (len(sink.messages) + 5, True)):
        sink.before_accept = kill_at(count, accept)
        process = _start_sender(tagged_db, sink)
        assert process.wait(timeout=120) == -signal.SIGKILL
    sink.before_accept = None
    process = _start_sender(tagged_db, sink, capture=True)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err

    by_reader: dict[str, set[str]] = {}
    for message in sink.messages:
        by_reader.setdefault(message["To"], set()).add(message["Message-ID"])
    assert len(by_reader) == subscribers  # none lost
    assert all(len(ids) == 1 for ids in by_reader.values())  # one digest each
    # a second copy only of a message the server accepted just as its sender died: at most
    # one per sending process per kill
    assert len(sink.messages) - subscribers <= 2 * 5
    with session_scope(tagged_db) as session:
        statuses = session.scalars(select(DigestDelivery.status)).all()
    assert statuses == ["sent"] * subscribers
    # and a run in the same period sends nothing more
    again = _start_sender(tagged_db, sink, capture=True)
    out, _ = again.communicate(timeout=120)
    assert "0 sent" in out and f"{subscribers} already done" in out


# -- the commands ------------------------------------------------------------------------------

def test_digest_commands_preview_dry_run_and_clear_errors(tagged_db, sink, tmp_path):
    subscribe(tagged_db, "p@example.org", ["melanoma"])
    mail = {"BASE_URL": BASE, "SMTP_URL": sink.url}
    output = tmp_path / "preview.html"
    shown = run_cli("digest", "preview", "P@example.org", "-o", str(output), db_url=tagged_db,
                    settings=mail)
    assert shown.returncode == 0, shown.stderr
    assert "Nivolumab in melanoma" in shown.stdout and "Subject: ImmunoFeed daily" in shown.stdout
    assert "Nivolumab in melanoma" in output.read_text(encoding="utf-8")
    dry = run_cli("digest", "send", "--frequency", "daily", "--dry-run", db_url=tagged_db,
                  settings=mail)
    assert dry.returncode == 0 and "1 digests would be sent" in dry.stdout
    assert sink.messages == [] and count(tagged_db, DigestDelivery) == 0

    for args, settings, words in [
        (("digest", "send", "--frequency", "daily"), {"SMTP_URL": sink.url},
         "set IMMUNOFEED_BASE_URL"),
        (("digest", "send", "--frequency", "daily"), {**mail, "SMTP_URL": "http://mail"},
         "IMMUNOFEED_SMTP_URL must look like"),
        (("digest", "send", "--frequency", "daily"), {**mail, "MAIL_FROM": "nobody"},
         "IMMUNOFEED_MAIL_FROM is not an email address"),
        (("digest", "send", "--frequency", "hourly"), mail, "Invalid value for '--frequency'"),
        (("digest", "preview", "who@example.org"), mail, "no subscriber who@example.org"),
        (("digest", "preview", "not an address"), mail, "not a usable email address"),
        (("run",), {**mail, "DIGEST_HOUR": "25"}, "IMMUNOFEED_DIGEST_HOUR must be an hour"),
        (("serve", "--port", "1"), {"TRUSTED_PROXIES": "nginx"},
         "IMMUNOFEED_TRUSTED_PROXIES must be a whole number, not 'nginx'"),
    ]:
        failed = run_cli(*args, db_url=tagged_db, settings=settings)
        assert failed.returncode != 0 and words in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr
    assert sink.messages == []

    assert run_cli("digest", "send", "--frequency", "daily", db_url=tagged_db,
                   settings=mail).stdout.startswith("digests: 1 sent")
    stopped = run_cli("digest", "unsubscribe", "p@example.org", db_url=tagged_db)
    assert stopped.returncode == 0
    with session_scope(tagged_db) as session:
        assert session.scalar(select(Subscriber.status)) == "unsubscribed"


def test_two_runs_at_once_send_each_digest_once(tagged_db, sink):
    """Cron on two machines, or a run started by hand during the scheduled one: the second
    finds the first holding the run's lock and sends nothing; the first sends every digest."""
    import subprocess
    import threading
    import time

    emails = [f"both{i}@example.org" for i in range(6)]
    for email in emails:
        subscribe(tagged_db, email, ["melanoma"])

    second_done = threading.Event()

    def slowly(count: int) -> bool:  # the mail server takes the first message, then stalls
        if count:  # until the second run is over, so the first holds its lock meanwhile
            second_done.wait(timeout=60)
        return True

    sink.before_accept = slowly
    mail = {"BASE_URL": BASE, "SMTP_URL": sink.url}
    first = subprocess.Popen([IMMUNOFEED, "digest", "send", "--frequency", "daily", "--jobs", "2"],
                             env=cli_env(tagged_db, **mail), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not sink.received and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = run_cli("digest", "send", "--frequency", "daily", db_url=tagged_db, settings=mail)
    second_done.set()
    out, err = first.communicate(timeout=120)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert ("another `digest send --frequency daily` is running on this database; nothing sent"
            in second.stderr)
    assert first.returncode == 0, err
    assert out.startswith("digests: 6 sent")
    assert all(len(sink.to(email)) == 1 for email in emails)  # each once
    sink.before_accept = None
    third = run_cli("digest", "send", "--frequency", "daily", db_url=tagged_db, settings=mail)
    assert third.returncode == 0 and third.stdout.startswith("digests: 0 sent")  # lock let go


def test_run_crawls_the_sources_and_sends_the_digests(tagged_db, sink, sample_sources_file):
    """`immunofeed run` started after the digest hour: it crawls every source at once and
    catches up on today's digest; SIGTERM stops it cleanly."""
    import signal
    import subprocess
    import time

    from db.models import Source

    subscribe(tagged_db, "daily@example.org", ["melanoma"])
    env = cli_env(tagged_db, SMTP_URL=sink.url, BASE_URL=BASE, DIGEST_HOUR="0")
    process = subprocess.Popen([IMMUNOFEED, "run", "--sources", str(sample_sources_file),
                                *[f"--set={v}" for v in FAST[1::2]]],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    crawled = 0
    while time.monotonic() < deadline and process.poll() is None:
        with session_scope(tagged_db) as session:
            crawled = len(session.scalars(select(Source).where(
                Source.last_crawled_at.is_not(None))).all())
        if crawled and sink.to("daily@example.org"):
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert crawled > 0 and len(sink.to("daily@example.org")) == 1, out
    assert process.returncode == 0, out
    assert "daily digests: 1 sent" in out


def test_run_without_digests_only_crawls(tagged_db, sink, sample_sources_file):
    """A crawler machine's `immunofeed run --no-digests`: crawls, sends nothing, not even a
    digest overdue since this morning."""
    import signal
    import subprocess
    import time

    from db.models import Source

    subscribe(tagged_db, "daily@example.org", ["melanoma"])
    env = cli_env(tagged_db, SMTP_URL=sink.url, BASE_URL=BASE, DIGEST_HOUR="0")
    process = subprocess.Popen([IMMUNOFEED, "run", "--no-digests", "--sources",
                                str(sample_sources_file), *[f"--set={v}" for v in FAST[1::2]]],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    crawled = 0
    while not crawled and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        with session_scope(tagged_db) as session:
            crawled = len(session.scalars(select(Source).where(
                Source.last_crawled_at.is_not(None))).all())
    time.sleep(2)  # time enough for a catch-up digest, were one scheduled
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert crawled > 0 and process.returncode == 0, out
    assert "no digests" in out and "digests:" not in out
    assert sink.messages == []


# -- the SMTP connection -----------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_tls_and_login_as_the_url_says(tls, tagged_db, tmp_path, monkeypatch):
    from tests.smtpsink import self_signed_certificate
    from webapp.mail import MailConfigError

    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test's certificate
    for i in range(3):
        subscribe(tagged_db, f"tls{i}@example.org", ["melanoma"])
    with SmtpSink(tls=tls, certificate=certificate, login=("digest", "s3cret pass:@")) as sink:
        scheme, rest = sink.url.split("://")
        good = f"{scheme}://digest:s3cret%20pass%3A%40@{rest}"
        with SmtpMailer(SmtpConfig.from_url(good)) as mailer:
            report = send_digests(tagged_db, "daily", links_for(tagged_db), mailer)
        assert report.sent == 3 and len(sink.received) == 3
        assert sink.logins == [True] * 3
        assert len(sink.connections) == 1  # one connection for the whole run
        bad = f"{scheme}://digest:wrong@{rest}"
        with pytest.raises(MailConfigError, match="login .* refused"):
            SmtpMailer(SmtpConfig.from_url(bad)).send(sink.messages[0])


def test_the_rate_is_bounded(sink):
    from webapp.mail import new_message

    with SmtpMailer(SmtpConfig.from_url(sink.url.replace("max_rate=0", "max_rate=20"))) as m:
        started = time.monotonic()
        for i in range(5):
            m.send(new_message(f"r{i}@example.org", "Paced", "text", "<p>html</p>"))
        elapsed = time.monotonic() - started
    assert elapsed >= 4 / 20  # five messages at twenty a second: at least four gaps of 50 ms
    assert len(sink.received) == 5 and len(sink.connections) == 1


def test_a_read_only_database_serves_reads_and_answers_503_to_writes(tagged_db, sink):
    """A database opened read-only (a replica, a full disk remounted read-only): pages read as
    usual; subscribing answers a clear 503, never a stack trace."""
    from webapp import create_app

    url = sa.engine.make_url(tagged_db)
    if url.get_backend_name() == "sqlite":
        read_only = f"sqlite:///file:{url.database}?mode=ro&uri=true"
    else:  # PostgreSQL: every transaction of this client read-only, as on a hot standby
        options = f"{url.query.get('options', '')} -cdefault_transaction_read_only=on"
        read_only = url.update_query_dict({"options": options.strip()}).render_as_string(False)
    app = create_app({"TESTING": True, "DATABASE_URL": read_only, "SMTP_URL": sink.url,
                      "BASE_URL": BASE})
    limiter.reset()
    client = app.test_client()
    assert client.get("/search?q=melanoma").status_code == 200
    form = client.get("/subscribe?topic=melanoma")
    assert form.status_code == 503 and "not available right now" in form.text
    api = client.post("/api/v1/subscriptions", json={"email": "ro@example.org",
                                                     "topics": ["melanoma"]})
    assert api.status_code == 503 and api.get_json()["error"]["status"] == 503
    for answer in (form, api):
        assert "Traceback" not in answer.text
        assert "sqlite3" not in answer.text and "psycopg" not in answer.text
    assert sink.messages == []


def test_a_signing_key_another_process_made_meanwhile_is_the_one_used(db_url, monkeypatch):
    """Two `digest send` runs started together on a database with no key yet: the second
    finds none while the first makes it. It used to fail ('database is locked' on SQLite, its
    read transaction too old to write) and now takes the first one's key."""
    from db.models import AppSecret

    monkeypatch.delenv("IMMUNOFEED_SECRET_KEY", raising=False)
    with session_scope(db_url) as late:
        assert late.get(AppSecret, "signing-key") is None  # its read transaction is open
        with session_scope(db_url) as first:
            made = secret_key(first)
        assert secret_key(late) == made
    with session_scope(db_url) as later:
        assert secret_key(later) == made
        assert later.scalar(select(sa.func.count()).select_from(AppSecret)) == 1


def test_a_signing_key_is_made_beside_a_crawl_writing(db_url, monkeypatch):
    """The first `digest send` on a new database, while a crawl stores articles: its session
    read (no key) before the crawl's last commit. It used to fail ('database is locked' on
    SQLite: a stale read transaction may not write) and now makes the key all the same."""
    import threading

    from db.models import AppSecret

    monkeypatch.delenv("IMMUNOFEED_SECRET_KEY", raising=False)
    with session_scope(db_url) as late:
        assert late.get(AppSecret, "signing-key") is None  # its read transaction is open
        with session_scope(db_url, writer=True) as crawl:
            crawl.add(AppSecret(name="written-by-a-crawl", value="x"))
        holding = threading.Event()
        release = threading.Event()

        def crawl_still_writing() -> None:  # holds the write lock a moment longer
            with session_scope(db_url, writer=True) as crawl:
                crawl.add(AppSecret(name="written-later", value="y"))
                crawl.flush()
                holding.set()
                release.wait(5)

        writer = threading.Thread(target=crawl_still_writing)
        writer.start()
        assert holding.wait(5)
        threading.Timer(0.3, release.set).start()
        made = secret_key(late)
        writer.join(5)
    with session_scope(db_url) as later:
        assert later.get(AppSecret, "signing-key").value == made
        assert {s.name for s in later.scalars(select(AppSecret))} == {
            "signing-key", "written-by-a-crawl", "written-later"}
