"""The JSON Lines contract of `immunofeed tag`.

In: one {"id": ..., "text": "..."} object a line. Out: for each line, in order,
{"id": ..., "entities": [...], "summary": "..."}. A bad line stops the run with TagInputError
after every earlier line has been answered, so output lines always match input lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO

from nlp.parallel import annotate_batches

BATCH = 64


class TagInputError(ValueError):
    def __init__(self, line_number: int, reason: str):
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number


def _parse(line_number: int, line: str | bytes) -> tuple[object, str]:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise TagInputError(line_number, "not UTF-8 text") from None
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


def _records(lines: Iterable[str] | Iterable[bytes], failure: list[TagInputError]
             ) -> Iterator[list[tuple[object, str]]]:
    """Batches of parsed records; a bad line ends them, its error left in FAILURE."""
    batch: list[tuple[object, str]] = []
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            batch.append(_parse(number, line))
            if len(batch) >= BATCH:
                yield batch
                batch = []
    except TagInputError as exc:
        failure.append(exc)
    if batch:
        yield batch


def tag_lines(lines: Iterable[str] | Iterable[bytes], out: IO[str], jobs: int = 1) -> int:
    """Tag every line (text, or bytes in UTF-8) with JOBS processes; returns how many records
    were written. A bad line raises TagInputError once every line before it has been
    answered."""
    failure: list[TagInputError] = []
    written = 0
    for batch in annotate_batches(_records(lines, failure), jobs):
        out.writelines(json.dumps({"id": record_id, **annotation.as_dict()}, ensure_ascii=False)
                       + "\n" for record_id, annotation in batch)
        out.flush()
        written += len(batch)
    if failure:
        raise failure[0]
    return written
