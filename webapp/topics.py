"""What a digest subscriber follows: a concept (by slug or concept-page URL) or a search (by the
search page's URL). Each topic is stored as a short canonical string: the concept's slug, or
"search?" and the search's canonical query."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from db.models import Concept
from db.search import Filters
from webapp.params import BadParameter, SearchParams

MAX_TOPICS = 20
MAX_TOPIC_CHARS = 1000
SEARCH_PREFIX = "search?"
_CONCEPT_PATH = re.compile(r"/(?:therapy|cancer|target)/([a-z0-9-]+)(?:/feed\.(?:json|atom))?/?$")
_SLUG = re.compile(r"[a-z0-9-]+")


class TopicError(ValueError):
    """A topic that is neither a concept nor a search; the message says which one and why."""


@dataclass(frozen=True)
class Topic:
    key: str  # what is stored
    title: str  # what the reader sees
    path: str  # the site page that shows it, e.g. /therapy/pembrolizumab or /search?q=...
    params: SearchParams

    @property
    def heading(self) -> str:
        return self.title[:1].upper() + self.title[1:]

    @property
    def is_concept(self) -> bool:
        return not self.key.startswith(SEARCH_PREFIX)

    def filters(self, **window: object) -> Filters:
        return Filters(**{**self.params.others.__dict__, **window})


def _concept(session: Session, slug: str) -> Concept | None:
    return session.scalar(select(Concept).where(Concept.slug == slug))


def parse_topic(session: Session, raw: str) -> Topic:
    """The topic RAW names: a concept slug ("pembrolizumab"), a concept page's URL, or a search
    URL ("https://site/search?q=car-t&cancer=myeloma", "/search?...", "search?...")."""
    text = raw.strip()
    if not text:
        raise TopicError("a topic is empty")
    if len(text) > MAX_TOPIC_CHARS:
        raise TopicError(f"a topic is longer than {MAX_TOPIC_CHARS} characters")
    shown = text if len(text) <= 60 else text[:57] + "..."
    if _SLUG.fullmatch(text.lower()) and "/" not in text:
        return concept_topic(session, text.lower(), shown)
    parts = urlsplit(text if "://" in text or text.startswith(("/", "?")) else "/" + text)
    found = _CONCEPT_PATH.search(parts.path)
    if found and not parts.query:
        return concept_topic(session, found.group(1), shown)
    if parts.path.rstrip("/").endswith("/search") or parts.path in ("", "/"):
        return search_topic(session, parts.query, shown)
    raise TopicError(f"{shown!r} is neither a concept nor a search page URL")


def concept_topic(session: Session, slug: str, shown: str | None = None) -> Topic:
    concept = _concept(session, slug)
    if concept is None:
        raise TopicError(f"{shown or slug!r} is not a therapy, cancer type or target we know")
    param = {"THERAPY": "therapy", "CANCER": "cancer", "TARGET": "target"}[concept.label]
    params = SearchParams(filters={param: [slug]})
    return Topic(slug, concept.name, f"/{param}/{slug}", params)


def search_topic(session: Session, query: str, shown: str | None = None) -> Topic:
    args = MultiDict([(k, v) for k, values in parse_qs(query).items() for v in values])
    try:
        params = SearchParams.from_args(args)
    except BadParameter as exc:
        raise TopicError(f"{shown or query!r}: {exc}") from None
    canonical = params.canonical_args() or params.query_args()
    canonical.pop("page", None)
    canonical.pop("sort", None)
    params = SearchParams.from_args(MultiDict(_pairs(canonical)))
    encoded = urlencode(_pairs(canonical))
    return Topic(SEARCH_PREFIX + encoded, _search_title(session, params),
                 "/search" + ("?" + encoded if encoded else ""), params)


def _pairs(args: dict[str, object]) -> list[tuple[str, str]]:
    pairs = []
    for key, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append((key, str(item)))
    return pairs


def _search_title(session: Session, params: SearchParams) -> str:
    parts = [f"“{params.q}”"] if params.q else []
    names = dict(session.execute(select(Concept.slug, Concept.name)
                                 .where(Concept.slug.in_(params.slugs))).all())
    parts += [names.get(slug, slug) for slug in params.slugs]
    for name in ("kind", "source"):
        parts += params.filters.get(name, [])
    if params.since or params.until:
        parts.append(f"{params.since or '…'} to {params.until or '…'}")
    return "Search: " + ", ".join(parts) if parts else "Everything new"


def parse_topics(session: Session, raws: list[str]) -> list[Topic]:
    """Each of RAWS as a topic, duplicates dropped; TopicError names the first bad one."""
    if not raws:
        raise TopicError("choose at least one topic")
    topics: dict[str, Topic] = {}
    for raw in raws:
        if not isinstance(raw, str):
            raise TopicError("each topic must be a string")
        topic = parse_topic(session, raw)
        topics.setdefault(topic.key, topic)
    if len(topics) > MAX_TOPICS:
        raise TopicError(f"at most {MAX_TOPICS} topics")
    return list(topics.values())


def stored_topics(session: Session, keys: list[str]) -> list[Topic]:
    """The topics stored as KEYS; one that no longer parses (a concept since removed from the
    vocabulary) is left out rather than breaking the subscriber's digest."""
    topics = []
    for key in keys:
        try:
            topics.append(parse_topic(session, key))
        except TopicError:
            continue
    return topics
