"""Every concept of the vocabulary is found, as the concept it is, in a sentence written for it
(tests/fixtures/vocab/*_sentences.tsv: INNs, brands, development codes, abbreviations, class
names, Spanish), and no concept is left without one."""

from pathlib import Path

import pytest

from nlp.tagger import annotate
from nlp.vocabulary import vocabulary

SENTENCES = Path(__file__).parent / "fixtures" / "vocab"
FAMILIES = {"name", "synonym", "brand", "code", "abbreviation", "class", "spanish"}


def _cases():
    cases = []
    for path in sorted(SENTENCES.glob("*_sentences.tsv")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                slug, family, mention, sentence = line.split("\t")
                cases.append(pytest.param(slug, family, mention, sentence,
                                          id=f"{path.stem}:{number}:{slug}"))
    return cases


CASES = _cases()


@pytest.mark.parametrize("slug,family,mention,sentence", CASES)
def test_sentence_names_its_concept(slug, family, mention, sentence):
    assert family in FAMILIES
    start = sentence.lower().index(mention.lower())  # a sentence opens with a capital
    found = {(e.start, e.end, e.concept) for e in annotate(sentence).entities}
    assert (start, start + len(mention), slug) in found, found


def test_every_concept_has_a_sentence():
    covered = {case.values[0] for case in CASES}
    missing = [c.slug for c in vocabulary() if c.slug not in covered]
    assert missing == []
    assert covered <= {c.slug for c in vocabulary()}


@pytest.mark.parametrize("label", ["THERAPY", "CANCER", "TARGET"])
def test_each_label_is_tried_in_spanish_and_by_abbreviation(label):
    labels = {c.slug: c.label for c in vocabulary()}
    families = {case.values[1] for case in CASES if labels[case.values[0]] == label}
    assert {"spanish", "abbreviation" if label != "TARGET" else "name"} <= families
    if label == "THERAPY":
        assert {"brand", "code", "class"} <= families
