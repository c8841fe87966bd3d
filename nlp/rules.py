"""The rules that turn dictionary matches into mentions as a curator marks them.

They run on the entity rulers' matches (nlp/pipeline.py), in this order:

1. Spanish-only forms count only in Spanish text.
2. Abbreviations defined in the text (Schwartz–Hearst, nlp/abbreviations.py): a short form whose
   long form is a tagged concept is that concept wherever it appears; one defined as something
   else is no concept at all, and a capitalised "Cancer" that only ends such a name ("American
   Joint Committee on Cancer (AJCC)") is part of the name, not a mention.
3. Ambiguous short forms (ALL, MM, HCC...) stay only where defined or beside another cancer.
4. A bare neoplasm noun that modifies another ("tumour suppressor", "tumor-bearing") is dropped.
5. Cancer spans follow the annotated corpora's convention: coordinated sites are one mention
   ("colorectal, endometrial and ovarian cancers", "breast, ovarian, or other cancers"), and
   inheritance or behaviour words belong to it, coordinated ones too ("hereditary breast
   cancer", "familial or sporadic retinoblastoma", "malignant melanoma"; "non-hereditary breast
   cancer" is breast cancer, not the hereditary syndrome), while settings stay outside
   ("metastatic breast cancer" is breast cancer; the setting is an attribute of the mention,
   nlp/attributes.py, and an article label).
6. A neoplasm noun after an organ adjective the vocabulary lacks ("ampullary carcinoma") makes a
   mention of the noun's own concept, the nearest parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spacy.tokens import Doc, Span

from nlp.abbreviations import find_abbreviations, token_positions
from nlp.doctext import text_of
from nlp.language import guess_language

# (start token, end token) of a coordinated mention -> the other conjuncts' concepts
Doc.set_extension("also", default=None, force=True)

SPANISH_SUFFIX = "|es"

# Words a curator keeps inside a cancer mention (learned from the NCBI Disease and BC5CDR
# training annotations); settings such as metastatic, advanced or recurrent stay outside.
INCLUDED_MODIFIERS = frozenset({
    "familial", "hereditary", "inherited", "sporadic", "nonhereditary", "non-hereditary",
    "nonfamilial", "non-familial", "bilateral", "unilateral", "malignant", "benign",
    "attenuated", "multifocal", "multicentric", "multi-centric", "papillary", "nonpapillary",
    "non-papillary", "invasive", "noninvasive", "non-invasive",
})
# inheritance words that, negated ("non-hereditary"), leave the site's own cancer
INHERITANCE = frozenset({"hereditary", "inherited", "familial"})
# Bare neoplasm nouns: alone they name the class; before these words they name something else.
GENERIC_NOUNS = frozenset({
    "cancer", "cancers", "tumour", "tumours", "tumor", "tumors", "neoplasm", "neoplasms",
    "malignancy", "malignancies", "carcinoma", "carcinomas", "neoplasia", "adenocarcinoma",
    "adenocarcinomas",
})
# the concepts those nouns name alone ("Wilms tumour suppressor" still names Wilms tumour)
GENERIC_CONCEPTS = frozenset({"cancer", "solid-tumour", "carcinoma", "adenocarcinoma",
                              "hereditary-cancer-syndrome"})
NOT_A_MENTION_BEFORE = frozenset({
    "-", "suppressor", "suppressors", "suppression", "suppressing", "necrosis", "registry",
    "registries", "marker", "markers", "antigen", "antigens", "microenvironment", "mutational",
    "mutation", "burden", "immunology", "genome", "genomics", "board", "centre",
    "center", "centers", "centres", "research", "institute", "society", "survivors",
    "survivor", "care", "screening", "agency", "network",
})
CONJUNCTIONS = frozenset({",", "and", "or", "and/or", "/", "-", "&"})
# words that are no organ but coordinate like one: "haematopoietic and solid tumours"
COORDINATED_CLASSES = frozenset({"solid", "haematopoietic", "hematopoietic"})
# organ adjectives an unknown "<adjective> carcinoma" may be built on
_ORGAN_ADJECTIVE = re.compile(r"^[a-z]{4,}(?:al|ic|ary|ar|ine|eal|ial)$")
NOT_AN_ORGAN = frozenset({
    "metastatic", "clinical", "several", "primary", "secondary", "additional", "typical",
    "atypical", "original", "general", "classical", "potential", "historical", "critical",
    "medical", "surgical", "experimental", "genetic", "specific", "systemic", "chronic",
    "local", "regional", "distal", "proximal", "initial", "final", "terminal", "fatal",
    "lethal", "similar", "particular", "various", "peculiar", "regular", "molecular",
    "cellular", "epithelial", "preclinical", "basal", "ductal", "lobular", "ordinary",
    "necessary", "solitary", "rare", "familiar", "spontaneous", "synchronous",
    "residual", "occult", "radical", "human", "murine", "canine", "feline", "animal",
    "natural", "sporadic", "hereditary", "bilateral", "unilateral", "multifocal", "focal",
    "minimal", "trial", "usual", "unusual", "annual", "actual", "dual", "virtual",
    "individual", "environmental", "social", "mental", "total", "partial", "internal",
    "external", "lateral", "central", "peripheral", "neural", "skeletal", "visceral",
    "parietal", "interstitial", "endothelial", "stromal", "mesenchymal", "vascular",
    "muscular", "glandular", "tubular", "nodular", "papillary", "microscopic", "macroscopic",
})


_NEOPLASM_WORD = re.compile(r"^[a-z]+(?:oma|omas|omata)$")


@dataclass
class _Mention:
    start: int
    end: int
    label: str
    concept: str
    also: tuple[str, ...] = ()

    def span(self, doc: Doc) -> Span:
        return Span(doc, self.start, self.end, label=self.label, span_id=self.concept)


def _mentions(doc: Doc) -> list[_Mention]:
    return [_Mention(e.start, e.end, e.label_, e.ent_id_) for e in doc.ents]


class ConceptRules:
    def __init__(self, sites: dict[str, str], ambiguous: frozenset[str]):
        self.sites = sites  # lower-cased organ words ("breast", "non-small cell lung") -> concept
        self.ambiguous = ambiguous
        self.longest_site = max((len(w.split()) for w in sites), default=1) + 2

    def __call__(self, doc: Doc) -> Doc:
        mentions = _mentions(doc)
        if not mentions:
            return doc
        mentions = self._language(doc, mentions)
        mentions, defined = self._abbreviations(doc, mentions)
        mentions = self._ambiguous(doc, mentions, defined)
        mentions = [m for m in mentions if not self._modifies_a_noun(doc, m)]
        mentions = [self._extend(doc, m) if m.label == "CANCER" else m for m in mentions]
        doc.ents = _without_overlaps(doc, mentions)
        also = {(m.start, m.end): m.also for m in mentions if m.also}
        if also:
            doc._.also = also
        return doc

    # 1
    @staticmethod
    def _language(doc: Doc, mentions: list[_Mention]) -> list[_Mention]:
        if not any(m.concept.endswith(SPANISH_SUFFIX) for m in mentions):
            return mentions
        spanish = guess_language(text_of(doc)) == "es"
        kept = []
        for m in mentions:
            if m.concept.endswith(SPANISH_SUFFIX):
                if not spanish:
                    continue
                m.concept = m.concept[:-len(SPANISH_SUFFIX)]
            kept.append(m)
        return kept

    # 2
    @staticmethod
    def _abbreviations(doc: Doc, mentions: list[_Mention]) -> tuple[list[_Mention], set[str]]:
        """MENTIONS with defined short forms resolved, and the short forms defined as a
        concept. A short form's long form ends where the parenthesis opens, so a mention
        ending there is what it stands for."""
        if "(" not in text_of(doc):
            return mentions, set()
        defined: dict[str, _Mention | None] = {}
        by_end = {m.end: m for m in mentions}
        names: set[int] = set()  # starts of mentions that are part of a defined name
        for abbreviation in find_abbreviations(doc):
            meaning = by_end.get(abbreviation.short_start - 1)
            if meaning is not None and ConceptRules._ends_a_name(doc, meaning,
                                                                 abbreviation.long_start):
                names.add(meaning.start)
                meaning = None
            defined.setdefault(abbreviation.short, meaning)
        if not defined:
            return mentions, set()
        kept = [m for m in mentions if m.start not in names and (
            doc[m.start:m.end].text not in defined or defined[doc[m.start:m.end].text])]
        taken = {i for m in kept for i in range(m.start, m.end)}
        meanings = {short: m for short, m in defined.items() if m is not None}
        for i in token_positions(doc, meanings):
            meaning = meanings[doc[i].text]
            if i not in taken:
                kept.append(_Mention(i, i + 1, meaning.label, meaning.concept))
                taken.add(i)
        kept.sort(key=lambda m: m.start)
        return kept, {short for short, meaning in defined.items() if meaning is not None}

    @staticmethod
    def _ends_a_name(doc: Doc, mention: _Mention, long_start: int) -> bool:
        """A capitalised bare "Cancer" ending a longer defined name is part of the name of
        something else: "American Joint Committee on Cancer (AJCC)", "Centres de Lutte Contre
        le Cancer (FNCLCC)"."""
        first = doc[mention.start]
        return (mention.concept in GENERIC_CONCEPTS and long_start < mention.start
                and first.text[:1].isupper() and mention.start > 0
                and doc[mention.start - 1].text not in (".", "!", "?"))

    # 3
    def _ambiguous(self, doc: Doc, mentions: list[_Mention], defined: set[str]
                   ) -> list[_Mention]:
        doubtful = [m for m in mentions if doc[m.start:m.end].text in self.ambiguous
                    and doc[m.start:m.end].text not in defined]
        if not doubtful:
            return mentions
        context = any(m.label == "CANCER" and m not in doubtful for m in mentions)
        return mentions if context else [m for m in mentions if m not in doubtful]

    # 4
    @staticmethod
    def _modifies_a_noun(doc: Doc, mention: _Mention) -> bool:
        """A mention ending in a bare neoplasm noun that qualifies the next word: "tumour
        suppressor", "tumor-bearing", "familial tumour suppressor genes"."""
        if mention.end >= len(doc):
            return False
        noun, following = doc[mention.end - 1], doc[mention.end]
        if noun.lower_ not in GENERIC_NOUNS or mention.concept not in GENERIC_CONCEPTS:
            return False
        if following.text == "-":
            return noun.whitespace_ == "" and mention.end - mention.start == 1
        return following.lower_ in NOT_A_MENTION_BEFORE

    # 5 and 6
    def _extend(self, doc: Doc, mention: _Mention) -> _Mention:
        start = self._negated_inheritance(doc, mention)
        # an unknown organ or cell-type adjective before a mention that is a neoplasm noun
        # alone or one "of the <site>" ("parenchymal tumours of the kidney")
        word = doc[start].lower_
        head_only = mention.end - mention.start == 1 or doc[start + 1].lower_ == "of"
        if head_only and start > 0 \
                and (word in GENERIC_NOUNS or _NEOPLASM_WORD.match(word)) \
                and self._is_organ_adjective(doc[start - 1].lower_):
            start -= 1
        # coordinated sites: "<site> (, <site>)* (and|or|/|-) <site> <noun>", and "<site>
        # (, <site>)* (and|or) (some) other <noun>"
        other = self._other(doc, start) if mention.end - mention.start == 1 else None
        if other is not None or self._starts_with_site(doc, start, mention.end):
            found, others = self._coordinated(doc, start if other is None else other)
            if other is None or others:
                start = found
                mention.also = tuple(dict.fromkeys(c for c in reversed(others)
                                                   if c != mention.concept))
        mention.start = self._with_modifiers(doc, start)
        return mention

    def _negated_inheritance(self, doc: Doc, mention: _Mention) -> int:
        """Where MENTION starts, with a "non" or "non-" before an inheritance word it opens
        with: "non-hereditary breast cancer" is breast cancer, not the hereditary syndrome
        "hereditary breast cancer" names (the site after the word says which concept)."""
        start = mention.start
        if doc[start].lower_ not in INHERITANCE or mention.end - start < 2 or start == 0:
            return start
        if doc[start - 1].lower_ == "non":
            non = start - 1
        elif start > 1 and doc[start - 1].text == "-" and doc[start - 2].lower_ == "non":
            non = start - 2
        else:
            return start
        mention.concept = self._leading_site(doc, start + 1, mention.end) or mention.concept
        return non

    @staticmethod
    def _other(doc: Doc, start: int) -> int | None:
        """Where "other" or "some other" begins before START, if it does."""
        if start > 0 and doc[start - 1].lower_ == "other":
            return start - 2 if start > 1 and doc[start - 2].lower_ == "some" else start - 1
        return None

    @staticmethod
    def _with_modifiers(doc: Doc, start: int) -> int:
        """START moved back over the inheritance and behaviour words before it, coordinated
        ones too: "familial or sporadic bilateral retinoblastoma", "hereditary and non
        hereditary retinoblastoma"."""
        while start > 0:
            before = doc[start - 1].lower_
            if before in INCLUDED_MODIFIERS:
                start -= 1
            elif before == "non" and doc[start].lower_ in INCLUDED_MODIFIERS:
                start -= 1
            elif start > 2 and doc[start - 2].text == "-" \
                    and f"{doc[start - 3].lower_}-{before}" in INCLUDED_MODIFIERS:
                start -= 3  # "non-hereditary", written as three tokens
            elif start > 1 and before in ("and", "or", "and/or") \
                    and (doc[start].lower_ in INCLUDED_MODIFIERS or doc[start].lower_ == "non") \
                    and doc[start - 2].lower_ in INCLUDED_MODIFIERS:
                start -= 2
            else:
                return start
        return start

    @staticmethod
    def _is_organ_adjective(word: str) -> bool:
        return bool(_ORGAN_ADJECTIVE.match(word)) and word not in NOT_AN_ORGAN

    def _leading_site(self, doc: Doc, start: int, end: int) -> str | None:
        """The concept of the longest organ words doc[START:END] opens with, followed by more
        words."""
        for width in range(end - start - 1, 0, -1):
            if doc[start + width - 1].whitespace_:
                concept = self.sites.get(doc[start:start + width].text.lower())
                if concept is not None:
                    return concept
        return None

    def _starts_with_site(self, doc: Doc, start: int, end: int) -> bool:
        """Whether the mention doc[START:END] opens with organ words followed by more words."""
        if self._leading_site(doc, start, end) is not None:
            return True
        return end - start > 1 and (self._is_organ_adjective(doc[start].lower_)
                                    or doc[start].lower_ in COORDINATED_CLASSES)

    def _coordinated(self, doc: Doc, start: int) -> tuple[int, list[str]]:
        """Where a run of coordinated organ words before START begins, and their concepts."""
        position, concepts = start, []
        while True:
            j = position
            conjunctions = 0
            while j > 0 and doc[j - 1].lower_ in CONJUNCTIONS and conjunctions < 3:
                j -= 1
                conjunctions += 1
            if not conjunctions:
                return position, concepts
            for width in range(min(self.longest_site, j), 0, -1):
                words = doc[j - width:j].text.lower()
                concept = self.sites.get(words)
                if concept is None and width == 1 and (
                        self._is_organ_adjective(words) or words in COORDINATED_CLASSES):
                    concept = ""
                if concept is not None:
                    position = j - width
                    if concept:
                        concepts.append(concept)
                    break
            else:
                return position, concepts


def _without_overlaps(doc: Doc, mentions: list[_Mention]) -> list[Span]:
    spans, last_end = [], -1
    for m in sorted(mentions, key=lambda m: (m.start, -(m.end - m.start))):
        if m.start >= last_end:
            spans.append(m.span(doc))
            last_end = m.end
    return spans
