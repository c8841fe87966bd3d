"""The tagger: vocabulary, entities with exact offsets, normalisation, summaries."""

import pytest

from nlp.language import guess_language
from nlp.summarize import MAX_WORDS
from nlp.tagger import annotate, annotate_article
from nlp.vocabulary import read_vocabulary, spelling_variants, vocabulary


def _tags(text):
    return [(e.text, e.label, e.concept) for e in annotate(text).entities]


def test_vocabulary_is_consistent_and_covers_the_starter_set():
    concepts = read_vocabulary()
    by_label = {}
    for c in concepts:
        by_label.setdefault(c.label, []).append(c)
    assert len(by_label["CANCER"]) >= 30
    assert sum(1 for c in by_label["CANCER"] if c.xrefs.get("mesh")) >= 30
    slugs = {c.slug for c in concepts}
    for name in ("pembrolizumab", "nivolumab", "atezolizumab", "ipilimumab", "tisagenlecleucel",
                 "ciltacabtagene-autoleucel", "teclistamab", "blinatumomab", "lifileucel"):
        assert name in slugs
    assert {"pd-l1", "her2", "cd19", "bcma"} <= slugs


def test_hierarchy_runs_from_drug_to_immunotherapy():
    concepts = {c.slug: c for c in vocabulary()}
    chain, slug = [], "pembrolizumab"
    while slug:
        chain.append(slug)
        slug = concepts[slug].parent
    assert chain == ["pembrolizumab", "pd-1-inhibitor", "immune-checkpoint-inhibitor",
                     "immunotherapy"]


def test_offsets_point_at_the_mention():
    text = ("Pembrolizumab (Keytruda) improved survival in NSCLC and in triple-negative "
            "breast cancer.")
    entities = annotate(text).entities
    assert entities, "expected entities"
    for e in entities:
        assert text[e.start:e.end] == e.text
    assert _tags(text) == [
        ("Pembrolizumab", "THERAPY", "pembrolizumab"),
        ("Keytruda", "THERAPY", "pembrolizumab"),
        ("NSCLC", "CANCER", "non-small-cell-lung-cancer"),
        ("triple-negative breast cancer", "CANCER", "triple-negative-breast-cancer"),
    ]


def test_longest_match_and_corpus_span_convention():
    tags = _tags("A TIL therapy cleared metastatic HER2-negative breast cancer.")
    assert tags == [
        ("TIL therapy", "THERAPY", "til-therapy"),
        ("HER2", "TARGET", "her2"),
        ("breast cancer", "CANCER", "breast-cancer"),
    ]
    assert _tags("non-small cell lung cancer")[0][2] == "non-small-cell-lung-cancer"


def test_spellings_and_plurals():
    assert _tags("acute myeloid leukaemia")[0][2] == "acute-myeloid-leukaemia"
    assert _tags("acute myeloid leukemia")[0][2] == "acute-myeloid-leukaemia"
    assert _tags("breast cancers")[0][2] == "breast-cancer"
    assert _tags("oesophageal carcinoma")[0][2] == "oesophageal-cancer"
    assert "solid tumours" in spelling_variants("solid tumor")


def test_short_forms_match_only_as_written():
    assert _tags("HCC and TNBC") == [("HCC", "CANCER", "hepatocellular-carcinoma"),
                                     ("TNBC", "CANCER", "triple-negative-breast-cancer")]
    assert _tags("the hcc gene and tnbc lowercase") == []


def test_spanish_maps_to_the_same_concepts():
    tags = _tags("Inmunoterapia con linfocitos infiltrantes de tumor en cáncer de mama.")
    assert [t[2] for t in tags] == ["immunotherapy", "til-therapy", "breast-cancer"]


def test_entity_carries_name_and_mesh():
    (entity,) = annotate("Patients with melanoma.").entities
    assert entity.name == "melanoma" and entity.xrefs == {"mesh": "D008545"}


def test_summary_picks_the_finding_and_stays_short():
    body = (
        "The meeting opened on Monday in a large hall. "
        "Pembrolizumab improved overall survival in non-small cell lung cancer, with a hazard "
        "ratio of 0.72 in the phase 3 trial. "
        "Lunch was served at noon. "
        "The benefit was seen regardless of PD-L1 expression. "
        "Delegates left in the evening."
    )
    annotation = annotate_article("A title", body)
    assert "Pembrolizumab improved overall survival" in annotation.summary
    assert "Lunch was served" not in annotation.summary
    assert len(annotation.summary.split()) <= MAX_WORDS
    assert "A title" not in annotation.summary
    assert annotate_article("Only a title", "").summary == "Only a title"


def test_summary_of_a_long_sentence_is_cut_to_the_limit():
    body = " ".join(["word"] * 200) + "."
    summary = annotate(body).summary
    assert len(summary.split()) <= MAX_WORDS and summary.endswith("…")


@pytest.mark.parametrize("text,lang", [
    ("The trial of the drug was stopped early for efficacy in patients with cancer.", "en"),
    ("El ensayo de la terapia con los linfocitos se detuvo por la eficacia en el cáncer.", "es"),
    ("Kurz", None),
])
def test_language_guess(text, lang):
    assert guess_language(text) == lang


def test_summary_does_not_say_the_same_thing_twice():
    body = ("Adding pembrolizumab before and after surgery cut the risk of death by 28% in "
            "early-stage NSCLC.\n\nGiving pembrolizumab before and after surgery reduced the "
            "risk of death by 28% in patients with early-stage NSCLC, a phase 3 trial found. "
            "The benefit was seen regardless of PD-L1 expression.")
    summary = annotate_article("Title", body).summary
    assert summary.count("risk of death by 28%") == 1
    assert "regardless of PD-L1 expression" in summary
