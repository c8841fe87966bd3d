"""annotate(): text in, entities (normalised to vocabulary concepts) and a summary out."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from spacy.tokens import Doc

from nlp.attributes import cancer_attributes
from nlp.doctext import text_of
from nlp.pipeline import get_pipeline
from nlp.summarize import Sentence, split_sentences, summarize
from nlp.vocabulary import by_slug


@dataclass(frozen=True)
class Entity:
    start: int
    end: int
    text: str
    label: str
    concept: str
    name: str
    # dicts: left out of the hash (an entity is still hashable, its span and concept say which)
    xrefs: dict[str, str] = field(default_factory=dict, hash=False)
    # the other concepts of a coordinated mention: "breast and ovarian cancer" is ovarian cancer,
    # also breast cancer
    also: tuple[str, ...] = ()
    # what the words around a cancer mention say of it: setting, stage, biomarker status
    attributes: dict[str, object] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "start": self.start, "end": self.end, "text": self.text, "label": self.label,
            "concept": self.concept, "name": self.name, "xrefs": dict(self.xrefs),
        }
        if self.also:
            data["also"] = list(self.also)
        if self.attributes:
            data["attributes"] = self.attributes
        return data


@dataclass
class Annotation:
    entities: list[Entity]
    summary: str

    def mention_counts(self) -> Counter[str]:
        return Counter(c for e in self.entities for c in (e.concept, *e.also))

    def as_dict(self) -> dict[str, object]:
        return {"entities": [e.as_dict() for e in self.entities], "summary": self.summary}


def _entities(doc: Doc, offset: int = 0) -> list[Entity]:
    concepts = by_slug()
    also = doc._.also or {}
    text = text_of(doc)
    targets = {ent.text: ent.ent_id_ for ent in doc.ents if ent.label_ == "TARGET"}
    found = []
    for ent in doc.ents:
        concept = concepts[ent.ent_id_]
        attributes = (cancer_attributes(text, ent.start_char, ent.end_char, targets)
                      if ent.label_ == "CANCER" else {})
        found.append(
            Entity(
                start=ent.start_char + offset,
                end=ent.end_char + offset,
                text=ent.text,
                label=ent.label_,
                concept=concept.slug,
                name=concept.name,
                xrefs=dict(concept.xrefs),
                also=also.get((ent.start, ent.end), ()),
                attributes=attributes,
            )
        )
    return found


def _sentences(doc: Doc) -> list[Sentence]:
    """DOC's sentences with the number of mentions in each."""
    text, starts = text_of(doc), [e.start_char for e in doc.ents]
    return [Sentence(text[start:end], bisect_left(starts, end) - bisect_left(starts, start))
            for start, end in split_sentences(text)]


def _annotation(doc: Doc) -> Annotation:
    return Annotation(_entities(doc), summarize(_sentences(doc)))


def annotate(text: str) -> Annotation:
    return _annotation(get_pipeline()(text))


def annotate_many(texts: Iterable[str], batch_size: int = 64) -> Iterator[Annotation]:
    """Annotations of TEXTS in order, tokenised in batches."""
    for doc in get_pipeline().pipe(texts, batch_size=batch_size):
        yield _annotation(doc)


def annotate_article(title: str, body: str) -> Annotation:
    """Entities from the title and body, offsets as in the text f"{title}\n\n{body}"; the
    summary from the body alone (the title is shown beside it anyway)."""
    title = " ".join(title.split())
    title_doc, body_doc = get_pipeline().pipe([title, body])
    annotation = _annotation(body_doc)
    # offsets as in f"{title}\n\n{body}"
    annotation.entities = _entities(title_doc) + [
        replace(e, start=e.start + len(title) + 2, end=e.end + len(title) + 2)
        for e in annotation.entities
    ]
    if not annotation.summary and title:
        annotation.summary = title
    return annotation
