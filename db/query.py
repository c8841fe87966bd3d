"""The reader's search syntax, parsed into a structure no input can break.

Words are ANDed; `OR` between two terms joins them; `"a phrase"`; `-word` or `NOT word` excludes;
`word*` matches a prefix; `therapy:pembrolizumab`, `cancer:…`, `target:…`, `source:"Some Wire"`
and `type:trial` are filters, not words. Each term is rendered as a quoted string for the search
backend, so stray quotes, parentheses, `NEAR(`, `*` or a bare operator can never reach it as
syntax.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_QUERY_CHARS = 500
MAX_TERMS = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FIELDS = ("therapy", "cancer", "target", "source", "type")
_FIELD = re.compile(r'(?<!\S)(' + "|".join(FIELDS) + r'):(?:"([^"]*)"?|(\S+))', re.IGNORECASE)
_TOKEN = re.compile(r'(-?)"([^"]*)"?(\*?)|(\S+)')


@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False

    @property
    def is_phrase(self) -> bool:
        return " " in self.text


@dataclass
class ParsedQuery:
    raw: str
    groups: list[list[Term]] = field(default_factory=list)  # AND of OR-groups
    excluded: list[Term] = field(default_factory=list)
    notice: str | None = None  # a friendly word for the reader about what was changed
    fields: dict[str, list[str]] = field(default_factory=dict)  # "therapy:x" -> {"therapy": [x]}

    @property
    def is_empty(self) -> bool:
        return not self.groups

    def terms(self) -> list[Term]:
        return [t for group in self.groups for t in group]


def without_fields(raw: str) -> str:
    """RAW with its field filters ("therapy:x", 'source:"A Wire"') taken out."""
    return " ".join(_FIELD.sub(" ", raw).split())


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _clean(text: str) -> str:
    return " ".join(text.split())


def parse_query(raw: str | None) -> ParsedQuery:
    # control characters (NUL ends an FTS5 string early) are never part of a search
    raw = _CONTROL.sub(" ", raw or "")
    notice = None
    if len(raw) > MAX_QUERY_CHARS:
        raw = raw[:MAX_QUERY_CHARS]
        notice = f"Your search was long, so only its first {MAX_QUERY_CHARS} characters were used."
    query = ParsedQuery(raw=raw.strip())
    for match in _FIELD.finditer(raw):
        value = _clean(match.group(2) if match.group(2) is not None else match.group(3))
        if value:
            values = query.fields.setdefault(match.group(1).lower(), [])
            if value not in values:
                values.append(value)
    words = _FIELD.sub(" ", raw)
    join_next, negate_next, count = False, False, 0
    for match in _TOKEN.finditer(words):
        minus, phrase, star, word = match.groups()
        if word is not None:
            if word == "OR":
                join_next = bool(query.groups)
                continue
            if word == "AND":
                continue
            if word == "NOT":
                negate_next = True
                continue
            negate = word.startswith("-") and len(word) > 1
            word = word[1:] if negate else word
            prefix = word.endswith("*")
            term_text = _clean(word.rstrip("*"))
        else:
            negate, prefix, term_text = bool(minus), bool(star), _clean(phrase)
        negate = negate or negate_next
        negate_next = False
        if not _has_word(term_text):
            join_next = False
            continue
        if count >= MAX_TERMS:
            notice = f"Only the first {MAX_TERMS} words of your search were used."
            break
        count += 1
        term = Term(term_text, prefix=prefix and not negate)
        if negate:
            query.excluded.append(term)
        elif join_next and query.groups:
            query.groups[-1].append(term)
        else:
            query.groups.append([term])
        join_next = False
    if query.is_empty and query.excluded:
        notice = "Add a word to search for; a search cannot only exclude words."
    elif query.is_empty and query.raw and not query.fields:
        notice = "Type a word or a phrase to search for."
    query.notice = notice
    return query


TEXT_FILTER = "{title summary body}"  # FTS5 column filter: the columns readers' words match


def _fts5_string(term: Term) -> str:
    return '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "")


def _may_match_a_tag(term: Term) -> bool:
    """Whether TERM could match the concept tokens in tag_terms ("c123"): only if each of its
    words, without case and accents, is "c" or begins with "c" and a digit (stemming keeps a
    word's first two letters, and leaves words under three letters alone). The column filter
    that keeps such words to the text costs FTS5 a look at every match's positions (the
    ids of a word in every article: 85 -> 55 ms at a million), so other words go without."""
    letters = "".join(ch for ch in unicodedata.normalize("NFD", term.text)
                      if not unicodedata.combining(ch))
    words = re.findall(r"[^\W_]+", letters.casefold())
    return not words or all(w == "c" or (w[0] == "c" and w[1].isdigit()) for w in words)


def _text_phrase(term: Term) -> str:
    """TERM as an FTS5 phrase matching the text columns only."""
    phrase = _fts5_string(term)
    return f"{TEXT_FILTER} : {phrase}" if _may_match_a_tag(term) else phrase


def to_fts5(query: ParsedQuery, concepts: list[set[int]] | None = None) -> str:
    """An FTS5 MATCH expression for QUERY (which must not be empty), its words matched in the
    text columns only; with CONCEPTS, only articles tagged with one concept of each set."""
    groups = []
    for group in query.groups:
        parts = [_text_phrase(t) for t in group]
        groups.append(parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")")
    expr = " AND ".join(groups)
    for term in query.excluded:
        expr = f"({expr}) NOT {_text_phrase(term)}"
    for ids in concepts or []:
        if ids:  # no concept at all: the caller knows nothing matches
            expr = f"({expr}) AND tag_terms : (" + " OR ".join(f'"c{c}"' for c in sorted(ids)) + ")"
    return expr


def fts5_phrases(query: ParsedQuery, concepts: list[set[int]] | None = None
                 ) -> tuple[list[str], int]:
    """The phrases of to_fts5(QUERY, CONCEPTS) in the order FTS5 numbers them: the text
    phrases, each as a MATCH expression of its own over the text columns, then how many
    concept phrases follow."""
    terms = [*(t for group in query.groups for t in group), *query.excluded]
    return ([_text_phrase(t) for t in terms],
            sum(len(ids) for ids in concepts or [] if ids))
