"""The Flask app: its factory, the request-scoped database session, error pages and security
headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask, g, render_template
from sqlalchemy.exc import InternalError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from db import settings
from db.session import session_scope


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=settings.database_url(),
        BASE_URL=settings.get("BASE_URL"),
        SMTP_URL=settings.get("SMTP_URL"),
        REDIS_URL=settings.get("REDIS_URL"),
        PAGE_CACHE_MB=settings.get("PAGE_CACHE_MB"),
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    proxies = app.config.get("TRUSTED_PROXIES", settings.get("TRUSTED_PROXIES"))
    if not str(proxies).isdecimal():
        raise settings.SettingError(
            f"IMMUNOFEED_TRUSTED_PROXIES must be a whole number, not {proxies!r}")
    if int(proxies):
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = int(proxies)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from webapp import api, feeds, pagecache, site, subscribe

    pagecache.init_app(app)

    app.register_blueprint(site.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(api.bp)
    subscribe.init_app(app)
    _register_errors(app)

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        scope = g.pop("db_scope", None)
        if scope is not None:
            scope.__exit__(type(exc) if exc else None, exc, None)

    @app.after_request
    def _security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'",
        )
        return response

    @app.after_request  # runs before _security_headers, which then covers its answer too
    def _commit(response):  # type: ignore[no-untyped-def]
        # Committed before the answer leaves: a write that fails here (a full disk, a database
        # gone read-only) answers 503 instead of a success the database never kept.
        session = g.get("db_session")
        if session is None:
            return response
        try:
            session.commit()
        except PendingRollbackError:  # the view's write failed; its answer already says so
            session.rollback()
        except DATABASE_DOWN as error:
            session.rollback()
            return _database_down(app, error)
        return response

    return app


def db_session() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db_scope" not in g:
        from flask import current_app

        scope = session_scope(current_app.config["DATABASE_URL"])
        g.db_session = scope.__enter__()
        g.db_scope = scope
    return g.db_session


def _register_errors(app: Flask) -> None:
    @app.before_request
    def _no_nul_characters() -> None:
        # no database stores U+0000 in text (PostgreSQL refuses it outright): a parameter or
        # path carrying one names nothing, and is answered as a bad request
        from flask import abort, request

        texts = [request.path, *(text for key, values in request.values.lists()
                                 for text in (key, *values))]
        if request.is_json:
            texts.extend(_strings(request.get_json(silent=True)))
        if any("\x00" in text for text in texts):
            abort(400, description="A parameter or the address holds a NUL character (%00).")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        from webapp.api import error_response, is_api_request

        if is_api_request():
            return error_response(error.code or 500, error.description or error.name)
        return render_template("error.html", error=error), error.code or 500

    for kind in DATABASE_DOWN:
        app.register_error_handler(kind, lambda error: _database_down(app, error))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON body, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# OperationalError: unreachable, locked, disk full, a read-only SQLite file; InternalError: a
# read-only PostgreSQL (a hot standby, default_transaction_read_only).
DATABASE_DOWN = (OperationalError, InternalError)


def _database_down(app: Flask, error: OperationalError | InternalError):  # type: ignore[no-untyped-def]
    app.logger.error("database error: %s", error.orig)
    message = "The article database is not available right now. Please try again shortly."
    from webapp.api import error_response, is_api_request

    if is_api_request():
        return error_response(503, message)
    return app.make_response((render_template("error.html", error=None, message=message), 503))
