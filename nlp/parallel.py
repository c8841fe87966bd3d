"""Tagging on every core. Worker processes, forked once the spaCy pipeline is loaded, tag
batches of texts and send back only what the caller keeps (mention offsets and concepts, a
summary), never spaCy Docs: pickling whole Docs back, as spaCy's own n_process does, costs
more than the tagging itself.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from typing import TypeVar

from nlp.pipeline import get_pipeline
from nlp.tagger import Annotation, Entity, annotate_many
from nlp.vocabulary import by_slug

A = TypeVar("A")
B = TypeVar("B")
K = TypeVar("K")

# (start, end, label, concept slug, other concepts of a coordinated mention)
Span = tuple[int, int, str, str, tuple[str, ...]]


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _warm_up() -> None:
    get_pipeline()


def map_batches(function: Callable[[list[A]], list[B]], batches: Iterable[list[A]],
                jobs: int = 1) -> Iterator[tuple[list[A], list[B]]]:
    """Each batch with FUNCTION's answer for it, in order; JOBS worker processes when above 1,
    with at most two batches per worker read ahead. FUNCTION must be a module-level function
    (the workers look it up by name)."""
    if jobs <= 1:
        for batch in batches:
            yield batch, function(batch)
        return
    if "fork" in multiprocessing.get_all_start_methods():
        get_pipeline()  # loaded once here; the forked workers share it
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_warm_up) as pool:
        in_flight: deque[tuple[list[A], AsyncResult[list[B]]]] = deque()
        for batch in batches:
            in_flight.append((batch, pool.apply_async(function, (batch,))))
            if len(in_flight) >= 2 * jobs:
                done, answer = in_flight.popleft()
                yield done, answer.get()
        while in_flight:
            done, answer = in_flight.popleft()
            yield done, answer.get()


def spans_of(batch: list[tuple[K, str]]) -> list[tuple[list[Span], str]]:
    """A worker's answer for a batch of (key, text): each text's mentions as plain tuples, and
    its summary."""
    return [
        ([(e.start, e.end, e.label, e.concept, e.also) for e in annotation.entities],
         annotation.summary)
        for annotation in annotate_many(text for _, text in batch)
    ]


def annotation_from(text: str, spans: list[Span], summary: str) -> Annotation:
    """The Annotation a worker's spans stand for, with names and cross-references filled in
    from the vocabulary."""
    concepts = by_slug()
    return Annotation(
        [Entity(start, end, text[start:end], label, slug, concepts[slug].name,
                dict(concepts[slug].xrefs), also)
         for start, end, label, slug, also in spans],
        summary,
    )


def annotate_batches(batches: Iterable[list[tuple[K, str]]], jobs: int = 1
                     ) -> Iterator[list[tuple[K, Annotation]]]:
    """Each batch of (key, text) back as (key, annotation), in order, tagged by JOBS
    processes."""
    for batch, answers in map_batches(spans_of, batches, jobs):
        yield [(key, annotation_from(text, spans, summary))
               for (key, text), (spans, summary) in zip(batch, answers, strict=True)]
