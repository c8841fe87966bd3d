"""The tagger: vocabulary, entities with exact offsets, normalisation, summaries."""

import re

import pytest

from nlp.labels import article_labels, trial_phase
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
    assert len(by_label["CANCER"]) >= 150
    assert sum(1 for c in by_label["CANCER"] if c.xrefs.get("mesh")) >= 150
    for cancer in by_label["CANCER"]:
        mesh = cancer.xrefs.get("mesh")
        assert mesh is None or re.fullmatch(r"[CD]\d{6}|D\d{9}", mesh), cancer.slug
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


def test_a_site_and_its_noun_hyphenated_as_a_modifier():
    assert _cancers("There is no difference in breast-cancer frequency.") == [
        ("breast-cancer", "breast-cancer", ())]
    assert _cancers("Lung-cancer screening and bone-tumour registries.") == [
        ("Lung-cancer", "lung-cancer", ()), ("bone-tumour", "bone-cancer", ())]


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


def test_entities_can_be_kept_in_sets():
    text = "Metastatic HER2-negative breast cancer; breast cancer again."
    first, second = annotate(text).entities, annotate(text).entities
    assert set(first) == set(second) and len(set(first + second)) == len(first)
    assert first[1].attributes  # dict fields do not stop hashing


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


def _cancers(text):
    return [(e.text, e.concept, e.also) for e in annotate(text).entities if e.label == "CANCER"]


def test_abbreviations_defined_in_the_text_resolve_to_the_concept():
    text = ("Patients with adenomatous polyposis coli (APC) develop polyps. "
            "APC carriers were screened.")
    assert _cancers(text) == [
        ("adenomatous polyposis coli", "familial-adenomatous-polyposis", ()),
        ("APC", "familial-adenomatous-polyposis", ()),
        ("APC", "familial-adenomatous-polyposis", ()),
    ]
    # a short form defined as something else is no cancer, even one the vocabulary knows
    assert _cancers("Mismatch repair (MM) was lost. MM was rare.") == []


@pytest.mark.parametrize("text", [
    "Staging followed the American Joint Committee on Cancer (AJCC) system; AJCC 8.",
    "Ten centres of the Fédération Nationale des Centres de Lutte Contre le Cancer (FNCLCC).",
    # the corpora's text as it came: runs of spaces where accents were, which are no words
    "Ten centres of the F  d  ration Nationale des Centres de Lutte Contre le Cancer (FNCLCC).",
])
def test_cancer_ending_the_defined_name_of_something_else_is_no_mention(text):
    assert _cancers(text) == []


def test_a_capitalised_cancer_defined_as_itself_is_still_one():
    assert _cancers("Breast Cancer (BC) and BC relapse.") == [
        ("Breast Cancer", "breast-cancer", ()), ("BC", "breast-cancer", ()),
        ("BC", "breast-cancer", ())]
    assert _cancers("Patients with Cancer (CA) were seen.")[0] == ("Cancer", "cancer", ())


def test_ambiguous_short_forms_need_a_definition_or_cancer_context():
    assert _cancers("ALL patients received the drug.") == []
    assert _cancers("ALL and AML patients received the drug in this lymphoma study.") == [
        ("ALL", "acute-lymphoblastic-leukaemia", ()),
        ("AML", "acute-myeloid-leukaemia", ()),
        ("lymphoma", "lymphoma", ()),
    ]
    defined = "Children with acute lymphoblastic leukaemia (ALL) relapsed. ALL is rare."
    assert [c[1] for c in _cancers(defined)] == ["acute-lymphoblastic-leukaemia"] * 3


def test_coordinated_sites_are_one_mention_with_every_concept():
    assert _cancers("women with colorectal, endometrial and ovarian cancers") == [
        ("colorectal, endometrial and ovarian cancers", "ovarian-cancer",
         ("colorectal-cancer", "endometrial-cancer")),
    ]
    (entity,) = annotate("a family history of breast and/or ovarian cancer").entities
    assert entity.text == "breast and/or ovarian cancer" and entity.also == ("breast-cancer",)
    counts = annotate("breast and ovarian cancer").mention_counts()
    assert counts == {"ovarian-cancer": 1, "breast-cancer": 1}
    # "... and (some) other cancers" keeps the sites, the noun names the class
    assert _cancers("a history of breast, ovarian, or other cancers") == [
        ("breast, ovarian, or other cancers", "cancer", ("breast-cancer", "ovarian-cancer"))]
    assert _cancers("colon and some other cancers harbour it") == [
        ("colon and some other cancers", "cancer", ("colon-cancer",))]
    assert _cancers("surgery and other cancers") == [("cancers", "cancer", ())]
    assert _cancers("in hematopoietic and solid tumors") == [
        ("hematopoietic and solid tumors", "solid-tumour", ("haematological-malignancy",))]


def test_inheritance_words_belong_to_the_mention_and_settings_do_not():
    assert _cancers("sporadic renal cell carcinomas") == [
        ("sporadic renal cell carcinomas", "renal-cell-carcinoma", ())]
    assert _cancers("familial gastric cancer") == [
        ("familial gastric cancer", "gastric-cancer", ())]
    assert _cancers("hereditary breast cancer") == [
        ("hereditary breast cancer", "hereditary-breast-and-ovarian-cancer", ())]
    # coordinated inheritance words, and a negated one, which leaves the site's own cancer
    assert _cancers("familial or sporadic bilateral retinoblastoma") == [
        ("familial or sporadic bilateral retinoblastoma", "retinoblastoma", ())]
    assert _cancers("hereditary and non hereditary retinoblastoma") == [
        ("hereditary and non hereditary retinoblastoma", "retinoblastoma", ())]
    assert _cancers("non-hereditary breast cancer") == [
        ("non-hereditary breast cancer", "breast-cancer", ())]
    assert _cancers("hereditary breast or ovarian cancer") == [
        ("hereditary breast or ovarian cancer", "hereditary-breast-and-ovarian-cancer", ())]
    assert _cancers("metastatic castration-resistant prostate cancer") == [
        ("castration-resistant prostate cancer", "castration-resistant-prostate-cancer", ())]
    assert _cancers("advanced melanoma") == [("melanoma", "melanoma", ())]


def test_cancers_missing_from_the_list_fall_under_the_nearest_parent():
    assert _cancers("an ampullary carcinoma was resected") == [
        ("ampullary carcinoma", "carcinoma", ())]
    assert _cancers("carcinoma of the bladder") == [
        ("carcinoma of the bladder", "bladder-cancer", ())]
    assert _cancers("appendiceal adenocarcinoma") == [
        ("appendiceal adenocarcinoma", "appendix-cancer", ())]
    # "<noun>s of the <site>", and an adjective the vocabulary lacks before it
    assert _cancers("91 parenchymal tumours of the kidney were studied") == [
        ("parenchymal tumours of the kidney", "kidney-cancer", ())]
    assert _cancers("carcinomas of the breast") == [
        ("carcinomas of the breast", "breast-cancer", ())]
    # words of size or sight are no organ: the mention is the noun alone
    assert _cancers("gross and microscopic tumors were resected") == [
        ("tumors", "cancer", ())]


def test_neoplasm_nouns_naming_something_else_are_not_mentions():
    assert _cancers("the tumour suppressor p53 and tumor-bearing mice") == []
    assert _cancers("the Wilms tumour suppressor gene") == [("Wilms tumour", "wilms-tumour", ())]
    assert _cancers("the tumour shrank") == [("tumour", "cancer", ())]


def test_spanish_only_forms_count_only_in_spanish_text():
    spanish = "El ensayo con pacientes de cáncer de mama y de pulmón fue positivo para la terapia."
    assert [c[1] for c in _cancers(spanish)] == ["breast-cancer"]
    english = "The word cáncer de mama appears in this English sentence about the trial."
    assert _cancers(english) == []
    # forms Spanish shares with English count everywhere
    assert [c[1] for c in _cancers("un melanoma")] == ["melanoma"]


@pytest.mark.parametrize(("title", "text", "types"), [
    ("FDA approves tebentafusp for uveal melanoma", "The agency granted full approval.",
     ["regulatory-approval"]),
    ("Nivolumab extends survival", "The trial met its primary endpoint of overall survival.",
     ["trial-result"]),
    ("A new vaccine shrinks tumours in mice", "Xenografts regressed in 8 of 10 animals.",
     ["preclinical"]),
    ("Checkpoint inhibitors in older adults: a systematic review", "We pooled 40 trials.",
     ["review"]),
    ("Drugmaker acquires CAR-T developer", "The deal includes an upfront payment.",
     ["business"]),
    ("Updated NCCN guidelines for melanoma", "The panel changed its recommendations.",
     ["guideline"]),
    ("La EMA aprobó el fármaco", "La aprobación llega tras el ensayo.", ["regulatory-approval"]),
])
def test_article_types(title, text, types):
    assert article_labels(title, text).types == types


def test_an_approval_in_passing_is_background_not_the_news():
    text = "A patient responded. " * 30 + "TIL therapy is approved for melanoma."
    assert "regulatory-approval" not in article_labels("Case report", text).types


@pytest.mark.parametrize(("text", "phase"), [
    ("a phase 3 trial", "3"), ("the phase III KEYNOTE study", "3"), ("a Phase 1/2 study", "1/2"),
    ("phase Ib", "1"), ("un ensayo de fase II", "2"), ("no trial here", None),
])
def test_trial_phase(text, phase):
    assert trial_phase(text) == phase


def test_settings():
    labels = article_labels(
        "Neoadjuvant pembrolizumab", "In previously untreated metastatic disease, and as "
        "adjuvant therapy after surgery, and in relapsed or refractory patients.")
    assert labels.settings == ["metastatic", "adjuvant", "neoadjuvant", "first-line",
                               "refractory"]
    assert article_labels("Pembrolizumab", "A drug.").settings == []


def _section_texts(record):
    return {label: text for label, text in record.abstract_sections}


def test_structured_abstract_is_summarised_from_its_results_and_conclusions():
    from pathlib import Path

    from crawler.pubmed_xml import parse_pubmed_articles

    fixtures = Path(__file__).parent / "fixtures" / "pubmed"
    for name in ("pubmed4.xml", "pubmed5.xml", "pubmed-29768149.xml"):
        (record,) = [r for r in parse_pubmed_articles((fixtures / name).read_bytes())
                     if any(label for label, _ in r.abstract_sections)]
        sections = _section_texts(record)
        summary = annotate_article(record.title, record.abstract).summary
        conclusion = sections["CONCLUSIONS"]
        first_conclusion = conclusion[:conclusion.index(". ") + 1] if ". " in conclusion \
            else conclusion
        assert summary.endswith(first_conclusion) or first_conclusion in summary, name
        assert len(summary.split()) <= MAX_WORDS
        assert not any(label + ":" in summary for label in sections)
        findings = sections["RESULTS"] + " " + conclusion
        for sentence in summary.split(". "):
            assert sentence.rstrip(".") in findings, (name, sentence)


def test_spanish_structured_abstract_keeps_its_language():
    body = ("INTRODUCCIÓN: El cáncer de pulmón es frecuente.\n\n"
            "MÉTODOS: Se incluyeron 120 pacientes tratados con pembrolizumab.\n\n"
            "RESULTADOS: La tasa de respuesta fue del 45% y la supervivencia mediana de 18 "
            "meses.\n\n"
            "CONCLUSIONES: La inmunoterapia mejoró la supervivencia en el cáncer de pulmón.")
    summary = annotate_article("Inmunoterapia en cáncer de pulmón", body).summary
    assert summary == ("La tasa de respuesta fue del 45% y la supervivencia mediana de 18 "
                       "meses. La inmunoterapia mejoró la supervivencia en el cáncer de pulmón.")


def test_one_labelled_sentence_is_not_a_structured_abstract():
    body = ("Background: the company said on Monday that nivolumab was approved for melanoma. "
            "Shares rose.")
    assert "Background: the company said" in annotate_article("Title", body).summary


def test_no_form_names_two_concepts():
    from nlp.pipeline import is_case_sensitive, patterns_for

    owners: dict[tuple[str, bool], set[str]] = {}
    for concept in vocabulary():
        for pattern in patterns_for(concept):
            form = pattern["pattern"]
            key = form if is_case_sensitive(form) else form.lower()  # "pNET" is not "PNET"
            owners.setdefault((key, pattern["id"].endswith("|es")), set()).add(concept.slug)
    shared = {form: slugs for form, slugs in owners.items() if len(slugs) > 1}
    assert shared == {}


def _attributes(text):
    return [(e.text, e.attributes) for e in annotate(text).entities if e.label == "CANCER"]


@pytest.mark.parametrize("text, mention, attributes", [
    ("A T-cell therapy cleared metastatic HER2-negative breast cancer.", "breast cancer",
     {"setting": ["metastatic"], "status": {"her2": "negative"}}),
    ("Patients with stage II and III colorectal cancer were followed.", "colorectal cancer",
     {"stage": ["II", "III"]}),
    ("In estrogen receptor-positive breast carcinomas the rate fell.", "breast carcinomas",
     {"status": {"estrogen-receptor": "positive"}}),
    ("Women with HR+/HER2- breast cancer enrolled.", "breast cancer",
     {"status": {"hormone-receptor": "positive", "her2": "negative"}}),
    ("Teclistamab in relapsed or refractory multiple myeloma.", "multiple myeloma",
     {"setting": ["relapsed", "refractory"]}),
    ("Osimertinib after chemoradiation for stage IIIB, EGFR-mutant NSCLC.", "NSCLC",
     {"stage": ["IIIB"], "status": {"egfr": "mutated"}}),
    ("Pembrolizumab in MSI-H colorectal cancer.", "colorectal cancer",
     {"status": {"msi": "high"}}),
    ("Enfortumab in PD-L1-positive, locally advanced urothelial carcinoma.",
     "urothelial carcinoma",
     {"setting": ["locally-advanced"], "status": {"pd-l1": "positive"}}),
    ("Una paciente con cáncer de mama metastásico HER2 negativo se curó.", "cáncer de mama",
     {"setting": ["metastatic"], "status": {"her2": "negative"}}),
    ("Inmunoterapia en cáncer de pulmón avanzado en estadio IV.", "cáncer de pulmón",
     {"setting": ["advanced"], "stage": ["IV"]}),
])
def test_a_cancer_mention_carries_its_setting_stage_and_biomarker_status(text, mention,
                                                                          attributes):
    """The span and the concept stay the cancer type's; the words around it are attributes."""
    assert (mention, attributes) in _attributes(text)


def test_words_that_are_not_modifiers_give_no_attributes():
    found = _attributes("Patients with melanoma and breast cancer. Early and late breast "
                        "cancer differ. The stage was set for melanoma trials.")
    assert found == [("melanoma", {}), ("breast cancer", {}), ("breast cancer", {}),
                     ("melanoma", {})]
    assert "attributes" not in annotate("Melanoma.").entities[0].as_dict()
    tagged = annotate("Metastatic HER2-negative breast cancer.").entities
    cancer = next(e for e in tagged if e.label == "CANCER")
    assert (cancer.text, cancer.concept) == ("breast cancer", "breast-cancer")
    assert cancer.as_dict()["attributes"] == {"setting": ["metastatic"],
                                              "status": {"her2": "negative"}}


def test_attributes_of_any_words_around_a_mention_are_well_formed():
    """Whatever surrounds a cancer name, reading its attributes gives only the three known
    kinds, never an error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from nlp.attributes import cancer_attributes

    words = st.sampled_from(["metastatic", "HER2-negative", "stage", "IV", "and", "or", ",",
                             "/", "HR+", "EGFR", "-mutant", "ER/PR-positive", "MSI-H", "y",
                             "metastásico", "HER2", "negativo", "en estadio", "II", "x", " "])
    around = st.lists(words | st.text(max_size=6), max_size=12).map(" ".join)

    @settings(max_examples=300, deadline=None)
    @given(before=around, after=around)
    def check(before, after):
        text = f"{before} breast cancer {after}"
        start = len(before) + 1
        found = cancer_attributes(text, start, start + len("breast cancer"), {"HER2": "her2"})
        assert set(found) <= {"setting", "stage", "status"}
        assert all(isinstance(v, str) for v in found.get("setting", []))
        assert all(isinstance(v, str) for v in found.get("stage", []))
        assert all(isinstance(k, str) and isinstance(v, str)
                   for k, v in found.get("status", {}).items())

    check()
