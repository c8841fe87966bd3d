"""The JSON Lines contract of `immunofeed tag`.

In: one {"id": ..., "text": "..."} object a line. Out: for each line, in order,
{"id": ..., "entities": [...], "summary": "..."}. A bad line stops the run with TagInputError
after every earlier line has been answered, so output lines always match input lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

from nlp.tagger import annotate_many

BATCH = 64


class TagInputError(ValueError):
    def __init__(self, line_number: int, reason: str):
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number


def _parse(line_number: int, line: str) -> tuple[object, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TagInputError(line_number, f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise TagInputError(line_number, 'expected an object like {"id": ..., "text": "..."}')
    if "id" not in record:
        raise TagInputError(line_number, 'missing "id"')
    text = record.get("text")
    if not isinstance(text, str):
        raise TagInputError(line_number, '"text" must be a string')
    return record["id"], text


def _flush(batch: list[tuple[object, str]], out: IO[str]) -> None:
    for (doc_id, _), annotation in zip(batch, annotate_many(t for _, t in batch), strict=True):
        out.write(json.dumps({"id": doc_id, **annotation.as_dict()}, ensure_ascii=False) + "\n")
    out.flush()
    batch.clear()


def tag_lines(lines: Iterable[str], out: IO[str]) -> int:
    """Tag every line; returns how many records were written."""
    batch: list[tuple[object, str]] = []
    written = 0
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            batch.append(_parse(number, line))
            if len(batch) >= BATCH:
                written += len(batch)
                _flush(batch, out)
    finally:
        written += len(batch)
        _flush(batch, out)
    return written
