"""annotate(): text in, entities (normalised to vocabulary concepts) and a summary out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace

from spacy.tokens import Doc

from nlp.pipeline import get_pipeline
from nlp.summarize import Sentence, summarize
from nlp.vocabulary import by_slug


@dataclass(frozen=True)
class Entity:
    start: int
    end: int
    text: str
    label: str
    concept: str
    name: str
    xrefs: dict[str, str] = field(default_factory=dict)
    # the other concepts of a coordinated mention: "breast and ovarian cancer" is ovarian cancer,
    # also breast cancer
    also: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        if not self.also:
            del data["also"]
        else:
            data["also"] = list(self.also)
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
    found = []
    for ent in doc.ents:
        concept = concepts[ent.ent_id_]
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
            )
        )
    return found


def _annotation(doc: Doc) -> Annotation:
    sentences = [Sentence(s.text, len(s.ents)) for s in doc.sents]
    return Annotation(_entities(doc), summarize(sentences))


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
