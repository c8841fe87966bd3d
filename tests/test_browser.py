"""The site tried as a person would: Debian's Chromium, driven by Playwright, against the real
app served over HTTP on 127.0.0.1 from a really crawled database. Search, a facet, an article, a
concept page, a feed link and the map, with the keyboard where a reader would use it; axe-core's
WCAG 2 A and AA checks on each kind of page; screenshots are kept in test-artifacts/browser/."""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def site_url(crawled_db):
    from werkzeug.serving import make_server

    from webapp import create_app

    server = make_server("127.0.0.1", 0, create_app({"DATABASE_URL": crawled_db}),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI (.ci/run installs it): none at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    context.close()
    assert problems == []  # no script errors, no Content-Security-Policy violations


def test_search_facet_article_concept_feed(page, site_url):
    page.goto(site_url + "/")
    assert page.locator("h1").inner_text() == "Latest in cancer immunotherapy"
    page.screenshot(path=SHOTS / "home.png", full_page=True)

    page.get_by_label("Search articles").fill("pembrolizumab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=pembrolizumab")
    heading = page.locator("h1").inner_text()
    assert heading.endswith("for “pembrolizumab”") and int(heading.split()[0]) >= 4
    assert page.locator("mark").count() > 0
    page.screenshot(path=SHOTS / "search.png", full_page=True)

    facet = page.locator(".facets li").filter(has=page.locator("a[href*='cancer=']")).first
    expected = int(facet.locator(".count").inner_text())
    facet.locator("a").click()
    page.wait_for_url("**cancer=**")
    assert page.locator("li.result").count() == min(expected, 20)
    assert page.get_by_text("remove filter").count() == 1
    page.screenshot(path=SHOTS / "facet.png", full_page=True)

    first = page.locator("li.result h2 a").first
    title = first.inner_text()
    first.click()
    page.wait_for_url("**/articles/*")
    assert page.locator("h1").inner_text() == title
    page.screenshot(path=SHOTS / "article.png", full_page=True)

    page.locator("ul.chips a.chip-therapy").first.click()
    page.wait_for_url("**/therapy/*")
    assert page.locator("svg.chart rect").count() == 24
    assert page.get_by_role("heading", name="Latest").count() == 1
    page.screenshot(path=SHOTS / "concept.png", full_page=True)

    feed_href = page.get_by_role("link", name="JSON Feed").first.get_attribute("href")
    response = page.request.get(site_url + feed_href)
    assert response.ok and response.headers["content-type"].startswith("application/feed+json")
    feed = json.loads(response.text())
    assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["items"]


def test_keyboard_reaches_the_skip_link_then_the_search_box(page, site_url):
    page.goto(site_url + "/")
    focused = []
    for _ in range(3):
        page.keyboard.press("Tab")
        focused.append(page.evaluate(
            "document.activeElement.id || document.activeElement.textContent.trim()"))
    assert focused == ["Skip to content", "ImmunoFeed", "q"]
    page.keyboard.type("melanoma")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=melanoma")
    assert page.locator("li.result").count() > 0


def test_map_cells_open_their_search(page, site_url):
    page.goto(site_url + "/map")
    cells = page.locator("table.heatmap td a")
    assert cells.count() > 0
    page.screenshot(path=SHOTS / "map.png", full_page=True)
    cell = cells.first
    count = int(cell.inner_text())
    cell.click()
    page.wait_for_url("**/search?therapy=*&cancer=*")
    shown = int(page.locator("h1").inner_text().split()[0])
    assert shown == count


def test_narrow_screen_has_no_sideways_scroll(browser, site_url):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(site_url + "/search?q=melanoma")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=SHOTS / "narrow.png", full_page=True)
    context.close()
    assert width <= 375


@pytest.mark.parametrize("path", ["/", "/search?q=pembrolizumab", "/therapy/pembrolizumab",
                                  "an article", "/map", "/sources", "/about"])
def test_pages_pass_axe_accessibility_checks(page, site_url, path):
    from axe_playwright_python.sync_playwright import Axe

    if path == "an article":  # the newest one, whatever its number
        page.goto(site_url + "/")
        path = page.locator("li.result h2 a").first.get_attribute("href")
    page.goto(site_url + path)
    results = Axe().run(page, options={"resultTypes": ["violations"],
                                       "runOnly": ["wcag2a", "wcag2aa"]})
    problems = [(v["id"], v["impact"], len(v["nodes"]))
                for v in results.response["violations"]]
    assert problems == [], results.generate_report()


@pytest.fixture
def own_site(tagged_db, tmp_path):
    """The app on a database of its own (this test subscribes), its mail kept as files."""
    from werkzeug.serving import make_server

    from webapp import create_app

    outbox = tmp_path / "outbox"
    server = make_server("127.0.0.1", 0, create_app({"DATABASE_URL": tagged_db,
                                                     "OUTBOX": outbox}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", outbox
    server.shutdown()
    thread.join(timeout=10)


def test_email_me_this_subscribe_confirm_and_pause(page, own_site):
    import email
    import re
    from email.policy import default

    from axe_playwright_python.sync_playwright import Axe

    def accessible() -> None:
        results = Axe().run(page, options={"resultTypes": ["violations"],
                                           "runOnly": ["wcag2a", "wcag2aa"]})
        assert results.response["violations"] == [], results.generate_report()

    url, outbox = own_site
    page.goto(url + "/therapy/pembrolizumab")
    page.get_by_role("link", name="Email me this").click()
    page.wait_for_url("**/subscribe?topic=pembrolizumab")
    assert page.get_by_label("Pembrolizumab", exact=True).is_checked()
    accessible()
    page.get_by_label("Your email address").fill("browser.reader@example.org")
    page.get_by_label("Weekly").check()
    page.get_by_role("button", name="Email me a confirmation link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.screenshot(path=SHOTS / "subscribe-sent.png", full_page=True)

    [sent] = list(outbox.glob("*.eml"))
    message = email.message_from_bytes(sent.read_bytes(), policy=default)
    text = message.get_body(("plain",)).get_content()
    confirm = re.search(r"(http://127\.0\.0\.1:\d+/subscribe/confirm/\S+)", text).group(1)
    page.goto(confirm)
    assert "Confirmed: your weekly digest" in page.locator("main").inner_text()
    accessible()
    page.get_by_role("button", name="Pause").click()
    assert "Your digest is paused" in page.locator("main").inner_text()
    page.screenshot(path=SHOTS / "subscription-paused.png", full_page=True)
