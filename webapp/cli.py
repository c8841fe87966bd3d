"""The `immunofeed` command: one click group for every task."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from db import settings

# SQLAlchemy, Scrapy and spaCy are imported by the commands that use them, so that each command
# starts with only what it needs (`immunofeed tag` never touches a database).

F = TypeVar("F", bound=Callable[..., Any])


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url


def _user_error(exc: Exception) -> str | None:
    """The one line that explains EXC, when it is a failure a user can cause."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from crawler.sources import SourcesError
    from db.session import DatabaseUrlError
    from webapp.mail import MailConfigError

    if isinstance(exc, (SourcesError, DatabaseUrlError, MailConfigError, settings.SettingError)):
        return str(exc)
    if isinstance(exc, (OperationalError, ProgrammingError)):
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"database {_safe_url(settings.database_url())}: {reason}"
    return None


def friendly_errors(command: F) -> F:
    """Turn the failures a user can cause into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as exc:
            message = _user_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="immunofeed", prog_name="immunofeed")
def cli() -> None:
    """ImmunoFeed: collect, tag and serve cancer-immunotherapy news and literature.

    Settings come from IMMUNOFEED_* environment variables (`immunofeed settings` lists them).
    """


def prepare_database(url: str) -> None:
    """Create or upgrade the schema and load the vocabulary's concepts (one process at a time:
    several crawlers may start together)."""
    from sqlalchemy.orm import Session

    from crawler.pipelines import concept_data
    from db.concepts import sync_concepts
    from db.migrate import schema_transaction, upgrade
    from nlp.vocabulary import vocabulary

    with schema_transaction(url) as connection:
        upgrade(url, connection=connection)
        with Session(bind=connection) as session:
            sync_concepts(session, (concept_data(c) for c in vocabulary()))
            session.flush()


@cli.command("init-db")
@friendly_errors
def init_db() -> None:
    """Create the database (or bring it up to date) and load the vocabulary."""
    url = settings.database_url()
    prepare_database(url)
    click.echo(f"database ready: {_safe_url(url)}")


@cli.command("settings")
def show_settings() -> None:
    """List every IMMUNOFEED_* setting with its value and what it does."""
    for setting in settings.SETTINGS:
        value = setting.value()
        shown = _safe_url(value) if setting.name.endswith("_URL") and value else value
        click.echo(f"{setting.env}={shown}\n    {setting.help}")


@cli.command()
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False),
              help="TOML file of sources (default: IMMUNOFEED_SOURCES or crawler/sources.toml).")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Crawl only the source with this name (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="Log every request and item.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a Scrapy setting, e.g. -s DOWNLOAD_DELAY=0 (repeatable).")
@click.option("--alone", is_flag=True,
              help="Crawl in this process only, even when IMMUNOFEED_REDIS_URL is set.")
@friendly_errors
def crawl(sources_file: str | None, only: tuple[str, ...], verbose: bool,
          overrides: tuple[str, ...], alone: bool) -> None:
    """Crawl the sources, tag what is found and store it (no duplicates on re-runs).

    With IMMUNOFEED_REDIS_URL set, every crawl process started against that Redis, on this
    machine or others, shares one queue of pages: each page is fetched once by one of them."""
    from crawler.run import run_crawl
    from crawler.sources import load_sources

    sources = load_sources(sources_file or settings.get("SOURCES") or None)
    if only:
        unknown = sorted(set(only) - {s.name for s in sources})
        if unknown:
            raise click.ClickException(f"no source named {', '.join(map(repr, unknown))} in the "
                                       "sources file")
        sources = [s for s in sources if s.name in only]
    if not sources:
        raise click.ClickException("the sources file lists no sources")
    url = settings.database_url()
    prepare_database(url)
    scrapy_settings = _parse_overrides(overrides)
    redis_url = settings.get("REDIS_URL")
    if redis_url and not alone:
        from crawler.distributed import shared_crawl_settings

        _check_redis(redis_url)
        scrapy_settings = {**shared_crawl_settings(redis_url), **scrapy_settings}
    report = run_crawl(sources, url, log_level="INFO" if verbose else "WARNING",
                       settings=scrapy_settings)
    click.echo(report.line())
    if report.not_started:
        raise click.ClickException(f"the {', '.join(report.not_started)} crawl could not start "
                                   "(its error is in the log above)")
    if report.errors and len(report.errors) == len(sources) - len(report.skipped):
        raise click.ClickException("every source failed; nothing was crawled")


@cli.command("sources")
@click.option("--filtered", is_flag=True,
              help="List the articles kept out of the site as off-topic instead.")
@friendly_errors
def list_sources(filtered: bool) -> None:
    """List every source with its type, health, last success, last error and article count."""
    from db.session import session_scope
    from db.sources import filtered_articles, source_statuses

    url = settings.database_url()
    prepare_database(url)
    if filtered:
        with session_scope(url) as session:
            for a in filtered_articles(session):
                source = a.source.name if a.source else "-"
                click.echo(f"{a.relevance:.2f}\t{source}\t{a.title}\t{a.url}")
        return
    with session_scope(url) as session:
        statuses = source_statuses(session)
    if not statuses:
        click.echo("no sources yet: run `immunofeed crawl`")
        return
    for s in statuses:
        when = s.last_success.strftime("%Y-%m-%d %H:%M") if s.last_success else "never"
        click.echo(f"{s.name}\t{s.type}\t{s.health}\tlast success {when}\t"
                   f"{s.articles} article(s)")
        if s.last_error:
            click.echo(f"    last error: {s.last_error}")
        if s.next_attempt and s.health != "ok":
            click.echo(f"    next attempt after {s.next_attempt:%Y-%m-%d %H:%M} UTC")


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except (redis.RedisError, ValueError) as exc:
        raise click.ClickException(
            f"cannot reach Redis at {_safe_url(url)} (IMMUNOFEED_REDIS_URL): {exc} "
            "(or crawl without it: --alone)") from None


def _parse_overrides(overrides: tuple[str, ...]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for override in overrides:
        name, sep, value = override.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {override!r}", param_hint="--set")
        parsed[name.strip()] = value
    return parsed


@cli.command()
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per core).")
@click.option("--rebuild", is_flag=True,
              help="Re-tag every article in the database instead (after a vocabulary change).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, metavar="IDS",
              help="With --rebuild: article ids per share of the work (default 2000).")
@friendly_errors
def tag(jobs: int | None, rebuild: bool, chunk_size: int | None) -> None:
    """Tag JSON Lines from stdin: {"id", "text"} in, {"id", "entities", "summary"} out.

    With --rebuild, re-tag the articles stored in the database (IMMUNOFEED_DATABASE_URL) with
    the current vocabulary, showing progress on stderr. Started on several machines (or
    several times), the processes share the work; started again after a stop, it does only
    what is left.
    """
    from nlp.parallel import cpu_count

    jobs = jobs or cpu_count()
    if rebuild:
        _rebuild_tags(jobs, chunk_size)
        return
    if chunk_size is not None:
        raise click.UsageError("--chunk-size goes with --rebuild")
    from nlp.stream import TagInputError, tag_lines

    stdin = click.get_binary_stream("stdin")  # decoded line by line, so a bad line is named
    stdout = click.get_text_stream("stdout", encoding="utf-8")
    try:
        tag_lines(stdin, stdout, jobs)
    except TagInputError as exc:
        raise click.ClickException(f"stdin {exc}") from None


def _rebuild_tags(jobs: int, chunk_size: int | None) -> None:
    from crawler.retag import CHUNK, retag_all
    from db.articles import count_articles
    from db.session import session_scope

    url = settings.database_url()
    prepare_database(url)
    with session_scope(url) as session:
        total = count_articles(session)
    with click.progressbar(length=total, label="re-tagging", file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        done = retag_all(url, jobs, progress=bar.update, chunk_size=chunk_size or CHUNK)
    click.echo(f"re-tagged {done.articles - len(done.failed)} articles, {done.changed} changed"
               + ("" if done.finished else "; other processes are finishing the rest"))
    if done.failed:
        first, reason = next(iter(done.failed.items()))
        more = f" and {len(done.failed) - 1} more" if len(done.failed) > 1 else ""
        raise click.ClickException(
            f"the tagger failed on article {first} ({reason}){more}; their earlier tags are "
            "kept (a fault to report)")


@cli.command()
@click.argument("page")
@friendly_errors
def extract(page: str) -> None:
    """Print the article in PAGE (an HTML file or an http(s) URL) as JSON: title, text,
    published, authors, language. The same code the spiders use."""
    import json

    from crawler.extract import extract_article

    if page.startswith(("http://", "https://")):
        html, url = _fetch(page), page
    else:
        try:
            html, url = Path(page).read_bytes(), None
        except OSError as exc:
            raise click.ClickException(f"cannot read {page}: {exc.strerror}") from None
    found = extract_article(html, url)
    if found is None:
        raise click.ClickException(f"no article text found in {page}")
    click.echo(json.dumps(found.as_json(), ensure_ascii=False))


def _fetch(url: str) -> bytes:
    import urllib.error
    import urllib.request

    from crawler.settings import DOWNLOAD_MAXSIZE, DOWNLOAD_TIMEOUT, USER_AGENT

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            data = response.read(DOWNLOAD_MAXSIZE + 1)
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"cannot fetch {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot fetch {url}: {reason}") from None
    if len(data) > DOWNLOAD_MAXSIZE:
        raise click.ClickException(f"{url} is larger than {DOWNLOAD_MAXSIZE} bytes")
    return data


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@friendly_errors
def serve(host: str, port: int) -> None:
    """Serve the site and feeds."""
    prepare_database(settings.database_url())
    _serve(host, port)


def _serve(host: str, port: int) -> None:
    from waitress import serve as waitress_serve

    from webapp import create_app

    app = create_app()
    click.echo(f"ImmunoFeed at http://{host}:{port}/  (Ctrl-C stops)")
    try:
        waitress_serve(app, host=host, port=port, threads=8, _quiet=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        click.echo("stopped")


@cli.command()
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="Port for the ImmunoFeed site.")
@click.option("--sample-port", default=8799, show_default=True, type=click.IntRange(1, 65535),
              help="Port for the local sample news site (kept fixed so re-runs find the same "
              "article URLs).")
@friendly_errors
def demo(port: int, sample_port: int) -> None:
    """Crawl the bundled sample news site into the database, then serve ImmunoFeed."""
    from crawler.run import run_crawl
    from crawler.samplesite import SampleSite
    from crawler.samplesite.render import FEEDS
    from crawler.sources import SourceConfig, write_sources

    url = settings.database_url()
    prepare_database(url)
    try:
        site = SampleSite(port=sample_port).start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot start the sample site on 127.0.0.1:{sample_port}: {exc.strerror} "
            "(choose another with --sample-port)"
        ) from None
    sources = [
        SourceConfig(name=f"The Oncology Wire: {name}", type="feed", url=site.feed_url(name))
        for name in FEEDS
    ]
    sources_path = Path("var/demo-sources.toml")
    sources_path.parent.mkdir(parents=True, exist_ok=True)
    write_sources(sources_path, sources)
    click.echo(f"sample news site at {site.url}/ (sources written to {sources_path})")
    # our own local site: no need for the delays real sites get
    report = run_crawl(sources, url, settings={"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False})
    click.echo(report.line())
    _serve("127.0.0.1", port)


@cli.group("db")
def db_group() -> None:
    """Database tasks."""


@db_group.command("copy")
@click.option("--from", "source", required=True, metavar="URL",
              help="The database to copy (a SQLAlchemy URL).")
@click.option("--to", "target", required=True, metavar="URL",
              help="An empty database to copy it into, e.g. postgresql+psycopg://user@host/db.")
@friendly_errors
def db_copy(source: str, target: str) -> None:
    """Copy every article, concept, source and subscriber from one database to another (for
    example SQLite to PostgreSQL), with a progress bar. The target gets the schema first and
    must hold no data."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.copy import CopyError, check_source, copy_database

    def reason(exc: SQLAlchemyError) -> str:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]

    try:
        total = check_source(source)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot read {_safe_url(source)}: {reason(exc)}") from None
    try:
        with click.progressbar(length=total, label="copying", file=sys.stderr,
                               show_pos=True) as bar:
            copied = copy_database(source, target, progress=bar.update)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot copy into {_safe_url(target)}: {reason(exc)}"
                                   ) from None
    prepare_database(target)  # the vocabulary of this version, over the copied concepts
    click.echo(f"copied {sum(copied.values())} rows into {_safe_url(target)}: "
               + ", ".join(f"{n} {name}" for name, n in copied.items() if n))


@db_group.command("optimize")
@friendly_errors
def db_optimize() -> None:
    """Merge the full-text index (SQLite: its segments into one; PostgreSQL: the GIN index's
    pending entries, and fresh planner statistics), so that searches read one structure.
    `immunofeed run` does this each night; run it after loading many articles at once."""
    from db.maintenance import optimize

    url = settings.database_url()
    prepare_database(url)  # an empty or older database gets its schema first
    click.echo(optimize(url))


@cli.command("run")
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False),
              help="TOML file of sources (default: IMMUNOFEED_SOURCES or crawler/sources.toml).")
@click.option("-s", "--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a Scrapy setting for every crawl (repeatable).")
@click.option("--no-digests", is_flag=True,
              help="Only crawl (on every machine but the one that sends the digests).")
@friendly_errors
def run(sources_file: str | None, overrides: tuple[str, ...], no_digests: bool) -> None:
    """Crawl each source on its interval and send the digests at IMMUNOFEED_DIGEST_HOUR, until
    stopped (Ctrl-C or SIGTERM).

    On several machines sharing one database and IMMUNOFEED_REDIS_URL, run it on each (all but
    one with --no-digests): a source due for a crawl is crawled by all of them together."""
    import logging
    import signal

    from webapp.scheduler import ScheduleError, run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: "
                        "%(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    _parse_overrides(overrides)  # checked now, passed to each crawl as given
    url = settings.database_url()
    prepare_database(url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_forever(url, sources_file or settings.get("SOURCES") or None, overrides,
                    digests=not no_digests)
    except ScheduleError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group()
def digest() -> None:
    """Email digests: send the due ones, or preview one."""


def _site_links(url: str):  # -> webapp.mail.SiteLinks
    from db.session import session_scope
    from db.subscriptions import secret_key
    from webapp.mail import LinkSigner, SiteLinks, base_url_setting

    base = base_url_setting()
    with session_scope(url) as session:
        return SiteLinks(base, LinkSigner(secret_key(session)))


def _subscriber_or_fail(session, email: str):  # noqa: ANN001, ANN202
    """The subscriber at EMAIL (as typed: normalised first), or a one-line error."""
    from db.subscriptions import find_subscriber
    from webapp.subscribe import SubscriptionError, normalise_email

    try:
        address = normalise_email(email)
    except SubscriptionError as exc:
        raise click.ClickException(str(exc)) from None
    subscriber = find_subscriber(session, address)
    if subscriber is None:
        raise click.ClickException(f"no subscriber {address}")
    return subscriber


@digest.command("send")
@click.option("--frequency", type=click.Choice(["daily", "weekly"]), required=True,
              help="Which subscribers' digests to send.")
@click.option("--dry-run", is_flag=True, help="Build the due digests and count them; send and "
              "record nothing.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Sending processes, each with its own SMTP connection (default: one per "
              "core).")
@friendly_errors
def digest_send(frequency: str, dry_run: bool, jobs: int | None) -> None:
    """Send this period's digest to every confirmed FREQUENCY subscriber who has not had it.

    Safe to run again (or after a crash): each subscriber gets one digest per day (daily) or
    ISO week (weekly). Mail goes to IMMUNOFEED_SMTP_URL, or to var/outbox/ when it is empty."""
    from contextlib import nullcontext

    from nlp.parallel import cpu_count
    from webapp.digest import AlreadySending, one_run_at_a_time, send_digests
    from webapp.mail import mailer_from_settings

    url = settings.database_url()
    prepare_database(url)
    links = _site_links(url)
    try:
        with one_run_at_a_time(url, frequency) if not dry_run else nullcontext(), \
                mailer_from_settings() as mailer:
            report = send_digests(url, frequency, links, mailer, dry_run=dry_run,
                                  jobs=jobs or cpu_count())
    except AlreadySending:
        raise click.ClickException(
            f"another `digest send --frequency {frequency}` is running on this database; "
            "nothing sent by this one") from None
    if dry_run:
        click.echo(f"dry run: {report.sent} digests would be sent, {report.empty} empty, "
                   f"{report.skipped} already done this period")
        return
    click.echo(report.line())
    if report.stopped:
        raise click.ClickException(report.stopped)


@digest.command("preview")
@click.argument("email")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              default="digest-preview.html", show_default=True,
              help="Where to write the HTML part.")
@friendly_errors
def digest_preview(email: str, output: str) -> None:
    """Write EMAIL's next digest to an HTML file and print its text part (nothing is sent)."""
    from db.session import session_scope
    from webapp.digest import preview
    from webapp.mail import text_and_html

    url = settings.database_url()
    prepare_database(url)
    links = _site_links(url)
    with session_scope(url) as session:
        digest, message = preview(session, _subscriber_or_fail(session, email), links)
    text, html = text_and_html(message)
    try:
        Path(output).write_text(html, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"Subject: {message['Subject']}")
    click.echo(text)
    if not digest.count:
        click.echo("(nothing new since the last digest: this one would not be sent)")
    click.echo(f"HTML part written to {output}", err=True)


@digest.command("unsubscribe")
@click.argument("email")
@friendly_errors
def digest_unsubscribe(email: str) -> None:
    """Unsubscribe EMAIL (for requests that reach the List-Unsubscribe mailbox)."""
    from db.session import session_scope
    from db.subscriptions import unsubscribe

    url = settings.database_url()
    prepare_database(url)
    with session_scope(url) as session:
        subscriber = _subscriber_or_fail(session, email)
        unsubscribe(subscriber)
        address = subscriber.email
    click.echo(f"unsubscribed {address}")


def main() -> None:
    cli.main(prog_name="immunofeed", args=sys.argv[1:])


if __name__ == "__main__":  # `python -m webapp.cli`, as `immunofeed run` starts its crawls
    main()
