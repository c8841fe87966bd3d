"""The JSON Lines contract of `immunofeed tag`, on every core: worker processes parse, tag
and write out each line; the reading process only hands out lines and writes the answers in
order.

In: one {"id": ..., "text": "..."} object a line. Out: for each line, in order,
{"id": ..., "entities": [...], "summary": "..."}. A bad line stops the run with TagInputError
after every earlier line has been answered, so output lines always match input lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO

from nlp.parallel import fault, map_batches
from nlp.tagger import annotate_many

BATCH = 64


class TagInputError(ValueError):
    def __init__(self, line_number: int, reason: str):
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


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


Answer = str | tuple[int, str] | None  # an output line, (line number, error), or a blank line


def _numbered(lines: Iterable[str] | Iterable[bytes]
              ) -> Iterator[list[tuple[int, str | bytes]]]:
    batch: list[tuple[int, str | bytes]] = []
    for number, line in enumerate(lines, 1):
        batch.append((number, line))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def answer_lines(batch: list[tuple[int, str | bytes]]) -> list[Answer]:
    """A worker's answers for numbered input lines: each line's output line (JSON and all, so
    the reading process only writes), None for a blank line, or (number, reason) for a bad line,
    after which nothing more of the batch is tagged. A text the tagger fails on (a fault of its
    own, not of the input) is answered like a bad line, naming what failed."""
    answers: list[Answer] = []
    records: list[tuple[int, int, object, str]] = []  # (answer index, line number, id, text)
    for number, line in batch:
        if not line.strip():
            answers.append(None)
            continue
        try:
            record_id, text = _parse(number, line)
        except TagInputError as exc:
            answers.append((exc.line_number, exc.reason))
            break
        records.append((len(answers), number, record_id, text))
        answers.append(None)
    try:
        annotations = list(annotate_many(text for *_, text in records))
    except Exception:  # noqa: BLE001 - found again below, record by record
        annotations = []
        for index, number, _, text in records:
            try:
                annotations.extend(annotate_many([text]))
            except Exception as exc:  # noqa: BLE001 - reported as this line's answer
                del answers[index:]
                answers.append((number, f"the tagger failed on this text ({fault(exc)}); "
                                        "please report it"))
                break
    for (index, _, record_id, _), annotation in zip(records, annotations, strict=False):
        answers[index] = json.dumps({"id": record_id, **annotation.as_dict()},
                                    ensure_ascii=False) + "\n"
    return answers


def tag_lines(lines: Iterable[str] | Iterable[bytes], out: IO[str], jobs: int = 1) -> int:
    """Tag every line (text, or bytes in UTF-8) with JOBS processes; returns how many records
    were written. A bad line raises TagInputError once every line before it has been
    answered."""
    written = 0
    for _, answers in map_batches(answer_lines, _numbered(lines), jobs):
        for answer in answers:
            if isinstance(answer, tuple):
                out.flush()
                raise TagInputError(*answer)
            if answer is not None:
                out.write(answer)
                written += 1
        out.flush()
    return written
