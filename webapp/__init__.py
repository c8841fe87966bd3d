"""The reader's site and feeds (Flask), and the `immunofeed` command. Reads through db/ query
functions only.

Flask is imported only when the app is built (webapp/app.py), so commands that never serve a
page, such as `immunofeed tag`, start without it.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("create_app", "db_session"):
        from webapp import app

        return getattr(app, name)
    raise AttributeError(f"module 'webapp' has no attribute {name!r}")
