"""A Doc's text without rebuilding it: spaCy's Doc.text joins every token's text anew on each
call, which costs as much as a component's whole work on an abstract. The pipeline's tokenizer
keeps the text it was given on the Doc, and text_of() reads it back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from spacy.tokens import Doc

_KEY = "immunofeed.text"


class TextKeepingTokenizer:
    """Wraps spaCy's tokenizer; each Doc it makes remembers its text."""

    def __init__(self, tokenizer: Callable[[str], Doc]):
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> Doc:
        doc = self.tokenizer(text)
        doc.user_data[_KEY] = text
        return doc

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)


def text_of(doc: Doc) -> str:
    text = doc.user_data.get(_KEY)
    return doc.text if text is None else text
