"""Abbreviations defined in running text, "long form (SF)", found the Schwartz–Hearst way.

The short form is the text inside the parentheses (one or two words, 2 to 10 characters, starting
with a letter or digit, holding a letter). Its long form is the shortest run of the words just
before the parenthesis in which every character of the short form appears in order, read from
the end, the first one at the start of a word; at most min(|SF| + 5, 2·|SF|) words are looked at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc

from nlp.doctext import text_of

SENTENCE_ENDS = frozenset({".", "!", "?"})


@dataclass(frozen=True)
class Abbreviation:
    """A short form with a valid long form just before it: its text and token offsets."""
    short: str
    short_start: int
    short_end: int
    long_start: int = -1  # the long form's first token


def _is_short_form(text: str) -> bool:
    return (2 <= len(text) <= 10 and text[0].isalnum() and any(ch.isalpha() for ch in text)
            and len(text.split()) <= 2)


def long_form_start(short: str, candidate: str) -> int | None:
    """Where in CANDIDATE (the words before the parenthesis) the long form of SHORT starts, or
    None when SHORT's letters cannot be found in it in order."""
    letters = [ch.lower() for ch in short if ch.isalnum()]
    s, position = len(letters) - 1, len(candidate) - 1
    while s >= 0:
        wanted = letters[s]
        while position >= 0 and (
            candidate[position].lower() != wanted
            or (s == 0 and position > 0 and candidate[position - 1].isalnum())
        ):
            position -= 1
        if position < 0:
            return None
        s -= 1
        position -= 1
    start = position + 1
    while start > 0 and candidate[start - 1].isalnum():  # back to the start of that word
        start -= 1
    return start


def token_positions(doc: Doc, texts: Iterable[str]) -> list[int]:
    """The indices of DOC's tokens written as one of TEXTS, found without a Python loop over
    every token."""
    strings = doc.vocab.strings
    wanted = [strings[t] for t in texts if t in strings]
    if not wanted:
        return []
    return numpy.flatnonzero(numpy.isin(doc.to_array(ORTH), wanted)).tolist()


def _words_back(doc: Doc, i: int, words: int) -> int:
    """The token WORDS words before token I (runs of spaces are no words)."""
    j = i
    while j > 0 and words > 0:
        j -= 1
        words -= not doc[j].is_space
    return j


def _sentence_start(doc: Doc, i: int, limit: int) -> int:
    """Where the sentence holding token I starts, looking back no further than LIMIT."""
    for j in range(i - 1, limit - 1, -1):
        token = doc[j]
        if token.text in SENTENCE_ENDS or (token.is_space and "\n" in token.text):
            return j + 1
    return limit


def find_abbreviations(doc: Doc) -> list[Abbreviation]:
    found = []
    text = text_of(doc)
    for i in token_positions(doc, ("(",)):
        token = doc[i]
        if i == 0:
            continue
        close = next((t.i for t in doc[token.i + 1:token.i + 5] if t.text == ")"), None)
        if close is None or close == token.i + 1:
            continue
        short = doc[token.i + 1:close].text
        if not _is_short_form(short):
            continue
        words = min(len(short) + 5, 2 * len(short))
        first = _sentence_start(doc, token.i, _words_back(doc, token.i, words))
        if first >= token.i:
            continue
        span = doc[first:token.i]
        start = long_form_start(short, span.text)
        if start is None:
            continue
        long_start = span.start_char + start
        if text[long_start:span.end_char].lower().startswith(short.lower()):
            continue  # "CAR (CAR)": the short form repeated is no definition
        long_token = next(t.i for t in span if t.idx + len(t.text) > long_start)
        found.append(Abbreviation(short, token.i + 1, close, long_token))
    return found
