"""Search and listing of articles: full text, concept filters (parents include children),
facet counts and highlighted snippets.

SQLite uses the FTS5 index kept by triggers (bm25, title weighted above summary above body,
scored by db/fts_rank.py with word counts kept between searches);
PostgreSQL a weighted tsvector column (title A, summary B, body C) the database keeps itself,
under a GIN index (migration 0005), ranked by ts_rank_cd, snippets by ts_headline. Any other
backend gets a plain substring match.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.orm import Session, defer, joinedload, selectinload

from db import fts_rank, listing
from db.concepts import ancestor_chains, with_descendants
from db.dates import article_date, date_text
from db.fts_sqlite import EVERY_ARTICLE
from db.models import Article, ArticleConcept, Concept, Source
from db.pg_vector import concept_lexeme
from db.query import ParsedQuery, Term, fts5_phrases, to_fts5

# Private-use characters mark highlights in snippets; the web layer escapes the text and then
# turns them into <mark>, so crawled text never reaches a page unescaped.
MARK_START, MARK_END = "\ue000", "\ue001"
TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT = 10.0, 4.0, 1.0
TAGS_WEIGHT = 0.0  # concept tokens (db/fts_sqlite.py) filter, never rank
MAX_PER_PAGE = 100

log = logging.getLogger(__name__)

_fts = sa.table("article_fts", sa.column("rowid"))
_fts_col = sa.literal_column("article_fts")


KINDS = ("news", "paper", "preprint", "trial")


@dataclass(frozen=True)
class Filters:
    """What a search may be narrowed to besides concepts."""
    kinds: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # source names
    since: date | None = None  # published (or fetched) on or after
    until: date | None = None  # on or before
    added_after: datetime | None = None  # first stored after this moment...
    added_until: datetime | None = None  # ...and no later than this one


@dataclass
class Hit:
    article: Article
    snippet: str | None = None


@dataclass
class FacetValue:
    label: str
    slug: str
    name: str
    count: int


@dataclass
class SearchPage:
    hits: list[Hit]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _substring_clause(term: Term) -> sa.ColumnElement[bool]:
    pattern = f"%{term.text}%"
    return sa.or_(Article.title.ilike(pattern), Article.body.ilike(pattern))


# PostgreSQL: the weighted tsvector that migration 0005 keeps on each article
_vector = sa.literal_column("articles.search_vector")
_PG_CONFIG = "english"


def _pg_term(term: Term) -> sa.ColumnElement:
    if term.prefix:
        word = re.sub(r"\W", "", term.text)
        if word:
            return func.to_tsquery(_PG_CONFIG, word + ":*")
    return func.phraseto_tsquery(_PG_CONFIG, term.text)


def _pg_tsquery(groups: list[list[Term]]) -> sa.ColumnElement:
    """The tsquery for AND-ed groups of OR-ed terms (each term a phrase or a prefix)."""
    combined = None
    for group in groups:
        either = _pg_term(group[0])
        for term in group[1:]:
            either = func.tsquery_or(either, _pg_term(term))
        combined = either if combined is None else func.tsquery_and(combined, either)
    assert combined is not None
    return combined


def _pg_whole_tsquery(query: ParsedQuery) -> sa.ColumnElement:
    """The one tsquery of everything QUERY asks for (its words, less its exclusions)."""
    excluded = func.tsquery_not(_pg_tsquery([query.excluded])) if query.excluded else None
    if not query.groups:
        assert excluded is not None
        return excluded
    words = _pg_tsquery(query.groups)
    return words if excluded is None else func.tsquery_and(words, excluded)


def _pg_match(query: ParsedQuery) -> sa.ColumnElement[bool]:
    """Whether an article matches QUERY, through the tsvector's GIN index."""
    clauses = []
    if query.groups:
        clauses.append(_vector.op("@@")(_pg_tsquery(query.groups)))
    if query.excluded:
        clauses.append(sa.not_(_vector.op("@@")(_pg_tsquery([query.excluded]))))
    return sa.and_(*clauses)


def _uses_fts(session: Session, query: ParsedQuery) -> bool:
    return not query.is_empty and session.get_bind().dialect.name == "sqlite"


def _rankable(session: Session, query: ParsedQuery) -> bool:
    """Whether this backend's full-text index can rank and make snippets for QUERY (a query
    of exclusions alone has nothing to rank by)."""
    dialect = session.get_bind().dialect.name
    return bool(query.groups) and dialect in ("sqlite", "postgresql")


def _matching(session: Session, query: ParsedQuery, concept_slugs: list[str],
              filters: Filters | None = None, ranked: bool = False) -> sa.Select:
    """SELECT Article.id of everything that matches; RANKED adds the full-text rank (lower
    is better) where _rankable."""
    use_fts = _uses_fts(session, query)
    ranked = ranked and _rankable(session, query)
    columns: list[sa.ColumnElement] = [Article.id.label("id")]
    if use_fts and ranked:
        columns.append(
            func.bm25(_fts_col, TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT, TAGS_WEIGHT)
            .label("rank"))
    # a story told by several sources is listed once, under the article that first carried it
    # off-topic articles (filtered) are kept but never listed
    stmt = select(*columns).where(Article.story_id.is_(None), Article.filtered.is_(False))
    if use_fts:
        stmt = stmt.join(_fts, _fts.c.rowid == Article.id).where(
            _fts_col.op("MATCH")(to_fts5(query))
        )
    elif not query.is_empty and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.where(_pg_match(query))
        if ranked:
            stmt = stmt.add_columns(
                (-func.ts_rank_cd(_vector, _pg_tsquery(query.groups))).label("rank"))
    elif not query.is_empty:
        for group in query.groups:
            stmt = stmt.where(sa.or_(*(_substring_clause(t) for t in group)))
        for term in query.excluded:
            stmt = stmt.where(sa.not_(_substring_clause(term)))
    filters = filters or Filters()
    if filters.kinds:
        stmt = stmt.where(Article.kind.in_(filters.kinds))
    if filters.sources:
        stmt = stmt.where(Article.source_id.in_(
            select(Source.id).where(Source.name.in_(filters.sources))))
    if filters.since:
        stmt = stmt.where(article_date() >= datetime.combine(filters.since, time(), UTC))
    if filters.until:
        day_after = filters.until + timedelta(days=1)
        stmt = stmt.where(article_date() < datetime.combine(day_after, time(), UTC))
    if filters.added_after:
        stmt = stmt.where(Article.added_at > filters.added_after)
    if filters.added_until:
        stmt = stmt.where(Article.added_at <= filters.added_until)
    for slug in concept_slugs:
        ids = with_descendants(session, slug)
        stmt = stmt.where(
            Article.id.in_(
                select(ArticleConcept.article_id).where(ArticleConcept.concept_id.in_(ids))
            )
        )
    return stmt


def matching_articles(session: Session, query: ParsedQuery, concept_slugs: list[str],
                      filters: Filters | None = None) -> list[tuple[int, datetime, datetime]]:
    """(id, added_at, date) of every listed article that matches, most recently added first;
    the date is its publication's, or when it was fetched if that is unknown."""
    matching = _matching(session, query, concept_slugs, filters).subquery()
    return [(article_id, added, published or fetched)
            for article_id, added, published, fetched in session.connection().execute(
                select(Article.id, Article.added_at, Article.published_at, Article.fetched_at)
                .join(matching, matching.c.id == Article.id)
                .order_by(Article.added_at.desc(), Article.id.desc()))]


_hits = sa.table("search_hits", sa.column("id"), sa.column("rank"))


def _materialise(session: Session, stmt: sa.Select, with_rank: bool) -> sa.TableClause:
    """STMT's ids (and ranks) in a temporary table of this connection, emptied first."""
    connection = session.connection()
    connection.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS search_hits (id INTEGER PRIMARY KEY, rank REAL)")
    connection.exec_driver_sql("DELETE FROM search_hits")
    columns = ["id", "rank"] if with_rank else ["id"]
    connection.execute(sa.insert(_hits).from_select(columns, stmt))
    return _hits


def _snippets(session: Session, query: ParsedQuery, ids: list[int]) -> dict[int, str]:
    """The best snippet of each of IDS (see _body_or_summary), by FTS5. Through the driver's
    cursor: SQLAlchemy's statement handling took as long as FTS5's snippets of a page."""
    cursor = session.connection().connection.driver_connection.cursor()
    match = to_fts5(query)
    column_number = {"body": 2, "summary": 1}
    return _body_or_summary(ids, lambda column, among: cursor.execute(
        f"SELECT rowid, snippet(article_fts, {column_number[column]}, ?1, ?2, '…', 32) "
        "FROM article_fts "
        "WHERE article_fts MATCH ?3 AND rowid IN (SELECT value FROM json_each(?4))",
        (MARK_START, MARK_END, match, json.dumps(among))))  # (each looked up: a page is few)


def _pg_snippets(session: Session, query: ParsedQuery, ids: list[int]) -> dict[int, str]:
    """As _snippets, by PostgreSQL's ts_headline. It parses all the text it is given, about a
    millisecond for a news article's body, so a body's snippet comes from a window of it that
    starts a few words before the first word beginning with one of the query's stems
    (_pg_windows). A window that lacks some of the stems (ts_headline marks nothing where the
    query is not met: "united" alone, for united states) is followed by one at the first word
    of a stem it lacks; one that holds them all but marks nothing began at a word that only
    looked like a match (policy for police: polic), and the next starts at a word that is none
    of those. After WINDOW_TRIES windows, or where no word begins with a stem, the snippet
    comes from the whole body, whose best passage ts_headline finds. The statements are built
    once: building one took longer than PostgreSQL took to run it."""
    words = " ".join(term.text for term in query.terms())
    lexemes, tsquery = session.execute(select(
        func.tsvector_to_array(func.to_tsvector(_PG_CONFIG, words)),
        sa.cast(_pg_tsquery(query.groups), sa.Text))).one()
    stems = _pg_stems(lexemes)
    finders = {stem: _stem_finder(stem) for stem in stems}

    def snippets_of(column: str, among: list[int]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        if column == "body" and stems:
            # what each body's next window starts at: a word beginning with one of these
            # stems, and none of these words
            wanted: dict[int, tuple[list[str], set[str]]] = {i: (stems, set()) for i in among}
            for _ in range(WINDOW_TRIES):
                again = {}
                for i, snippet, whole, text, hit in _pg_windows(session, tsquery, wanted):
                    marked = MARK_START in (snippet or "")
                    if whole:  # no stem word left: the whole body's snippet, or the summary's
                        if marked:
                            found.append((i, snippet))
                        continue
                    lacking = [stem for stem in stems if not finders[stem].search(text)]
                    if marked and not lacking:
                        found.append((i, snippet))
                    elif lacking:
                        again[i] = (lacking, wanted[i][1])
                    else:  # every stem there, no match: a word only looked like one
                        word = re.match(r"\w+", text[hit:])
                        again[i] = (wanted[i][0],
                                    wanted[i][1] | ({word.group().lower()} if word else set()))
                wanted = again
                if not wanted:
                    break
            among = list(wanted)
        if among:
            found += session.execute(_PG_HEADLINES[column],
                                     {"tsquery": tsquery, "ids": among}).all()
        return found

    return _body_or_summary(ids, snippets_of)


def _stem_finder(stem: str) -> re.Pattern[str]:
    """A word beginning with STEM, as _pg_windows looks for one (a final i also matches y)."""
    return re.compile(r"(?<!\w)" + _stem_pattern(stem), re.IGNORECASE)


def _stem_pattern(stem: str) -> str:
    # a final y is made i (therapy: therapi), as it stays in therapies
    return re.escape(stem[:-1]) + "[iy]" if stem.endswith("i") else re.escape(stem)


def _pg_stems(lexemes: list[str]) -> list[str]:
    """The stems of a query's words (LEXEMES, as PostgreSQL makes them) less the parts it adds
    of a hyphenated word (car-t: car, t, which begin carcinoma and a tenth of all words) and
    those of one or two letters where there are longer ones."""
    parts = {part for lexeme in lexemes if "-" in lexeme for part in lexeme.split("-")}
    stems = [lexeme for lexeme in lexemes if lexeme not in parts]
    return [stem for stem in stems if len(stem) > 2] or stems


# A body's window for its snippet (_pg_windows): up to WINDOW_LEAD characters before the first
# word that may match, from the first space among them, and WINDOW_WIDTH characters in all
# (a snippet is at most 30 words); at most WINDOW_TRIES windows a body (_pg_snippets).
WINDOW_LEAD, WINDOW_WIDTH, WINDOW_TRIES = 100, 700, 3


def _pg_headline(text: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """ts_headline of TEXT for the tsquery given as the parameter "tsquery" (its text)."""
    options = f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12"
    return func.ts_headline(_PG_CONFIG, text,
                            sa.cast(sa.bindparam("tsquery", type_=sa.Text), TSQUERY), options)


def _pg_windows_statement() -> sa.Select:
    """(id, snippet, whole, text, hit) of the articles given as the array "ids": the window of
    each body for its snippet (text) and where in it (from 0) the first word matching its
    regular expression (in the array "patterns", in the same order) starts; or the whole body
    (whole true) where no word matches."""
    # each step a subquery with OFFSET 0, which PostgreSQL does not merge into the next: the
    # next reads its values several times, and merged it would compute them (read the body)
    # each time
    given = func.unnest(sa.bindparam("ids", type_=ARRAY(sa.Integer)),
                        sa.bindparam("patterns", type_=ARRAY(sa.Text))
                        ).table_valued("id", "pattern").render_derived(name="given")
    hits = select(Article.id, Article.body.label("text"), func.regexp_instr(
        Article.body, given.c.pattern, 1, 1, 0, "i").label("hit")
    ).join(given, given.c.id == Article.id).offset(0).subquery()
    lead = hits.c.hit - WINDOW_LEAD
    space = func.regexp_instr(func.substr(hits.c.text, lead, WINDOW_LEAD), r"\s", 1, 1, 1)
    start = sa.case((hits.c.hit <= WINDOW_LEAD, 1),  # else from a space, or from the hit
                    else_=lead + func.coalesce(func.nullif(space, 0) - 1, WINDOW_LEAD))
    placed = select(hits, start.label("start")).offset(0).subquery()
    windows = select(
        placed.c.id,
        sa.case((placed.c.hit == 0, placed.c.text),
                else_=func.substr(placed.c.text, placed.c.start, WINDOW_WIDTH)).label("text"),
        (placed.c.hit == 0).label("whole"),
        sa.case((placed.c.hit == 0, 0), else_=placed.c.hit - placed.c.start).label("hit"),
    ).offset(0).subquery()
    return select(windows.c.id, _pg_headline(windows.c.text), windows.c.whole, windows.c.text,
                  windows.c.hit)


_PG_WINDOWS = _pg_windows_statement()
_PG_HEADLINES = {column: select(Article.id, _pg_headline(getattr(Article, column)))
                 .where(Article.id.in_(sa.bindparam("ids", expanding=True)))
                 for column in ("body", "summary")}


def _pg_windows(session: Session, tsquery: str, wanted: dict[int, tuple[list[str], set[str]]]
                ) -> list[sa.Row]:
    """(id, snippet, whole, text, hit) of each article of WANTED (see _pg_windows_statement),
    whose window starts at the first word that begins with one of its stems (_pg_stems) and
    is none of its words. A stem begins most words it comes from (English stems drop
    endings), so that word is where the first match usually is."""
    def pattern(stems: list[str], skip: set[str]) -> str:
        passed_over = "|".join(map(re.escape, sorted(skip)))
        return (r"\m" + (rf"(?!(?:{passed_over})\M)" if skip else "")
                + "(" + "|".join(map(_stem_pattern, stems)) + ")")

    return list(session.execute(_PG_WINDOWS, {
        "tsquery": tsquery, "ids": list(wanted),
        "patterns": [pattern(stems, skip) for stems, skip in wanted.values()]}).all())


def _body_or_summary(ids: list[int], snippets_of: Callable[[str, list[int]], Iterable]
                     ) -> dict[int, str]:
    """The snippet of each of IDS from its body, or from its summary where the body shows no
    match (a snippet of the title would repeat the headline); none (the page shows the
    summary) where neither does. SNIPPETS_OF(column, ids) gives (id, snippet) pairs of the
    column "body" or "summary": the summary's are asked only for the articles left."""
    found: dict[int, str] = {}
    for column in ("body", "summary"):
        if not ids:
            break
        found.update((article_id, snippet) for article_id, snippet in snippets_of(column, ids)
                     if snippet and MARK_START in snippet)
        ids = [i for i in ids if i not in found]
    return found


# A search matching more articles than this ranks the newest this many by relevance (then lists
# the rest newest first): ranking costs about a microsecond an article, a page shows 20.
RANKED_MATCHES = 10_000


def _ranks(session: Session, query: ParsedQuery, ids: np.ndarray,
           concepts: list[set[int]], articles: int, tagged: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """The ids of those of IDS (ascending) that match QUERY (and are tagged with one of each
    set of CONCEPTS: the full-text index then finds the articles under the concepts), and their
    ranks (lower is better), in no particular order. ARTICLES: how many articles there are.
    TAGGED: how many articles are tagged so, IDS among them (0: not counted); when they are all
    of IDS (none left out by other filters) SQLite's concept filter finds them without being
    given the list (10,000 ids: 3 ms less)."""
    if not len(ids):
        return np.empty(0, dtype=np.int64), np.empty(0)
    if session.get_bind().dialect.name == "postgresql":
        # as one string of the database's making: 10,000 rows through the driver cost as long
        # as ranking them (the ranks are PostgreSQL's reals, written as the driver reads them)
        rank = -func.ts_rank_cd(_vector, _pg_tsquery(query.groups))
        if _share_of_range(ids) > PG_RANGE_ABOVE:
            among, exact = Article.id.between(int(ids[0]), int(ids[-1])), False
        elif concepts and 0 < tagged <= PG_CONCEPTS_UP_TO * len(ids):
            among, exact = _vector.op("@@")(_pg_concepts_tsquery(concepts)), False
        else:
            among, exact = _pg_among(ids), True
        listed = session.scalar(
            select(func.string_agg(sa.cast(Article.id, sa.Text) + " " + sa.cast(rank, sa.Text),
                                   " "))
            .where(among, _pg_match(query)))
        pairs = np.fromstring(listed or "", sep=" ").reshape(-1, 2)
        found, ranks = pairs[:, 0].astype(np.int64), pairs[:, 1]
        if not exact:  # left out: the articles in the range or under the concepts not asked for
            at = np.minimum(np.searchsorted(ids, found), len(ids) - 1)
            wanted = ids[at] == found
            found, ranks = found[wanted], ranks[wanted]
        return found, ranks
    if _share_of_range(ids) > WORDS_ALONE_ABOVE:
        # IDS are dense among the articles between the first and last: walking the words'
        # postings there costs less than the concepts' tokens (the concepts weigh nothing,
        # TAGS_WEIGHT, and the list keeps the others out: the same ranks)
        concepts = []
    match = to_fts5(query, concepts)
    weights = (TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT, TAGS_WEIGHT)
    listed = not (concepts and tagged == len(ids))
    try:
        ranked = fts_rank.ranker.rank(session.get_bind().url.database, match,
                                      *fts5_phrases(query, concepts), ids, articles, weights,
                                      listed=listed)
        if ranked is not None:
            return ranked
    except fts_rank.RankingError as error:  # ranked below, and said so
        log.warning("ranking with kept counts failed (%s); ranking with bm25", error)
    cursor = session.connection().connection.driver_connection.cursor()
    among, parameters = fts_rank.matches_among(ids, listed)
    rows = cursor.execute(f"SELECT rowid, bm25(article_fts, ?, ?, ?, ?) {among}",
                          (*weights, match, *parameters)).fetchall()
    return (np.array([row[0] for row in rows], dtype=np.int64),
            np.array([row[1] for row in rows], dtype=np.float64))


def _share_of_range(ids: np.ndarray) -> float:
    """The share of the ids between the first and last of IDS (ascending, not empty) that IDS
    hold: how densely they fill their range."""
    return len(ids) / (int(ids[-1]) - int(ids[0]) + 1)


def _pg_among(ids: np.ndarray) -> sa.ColumnElement[bool]:
    """Article.id is one of IDS, which go to PostgreSQL as one array literal (psycopg takes
    13 ms to send 10,000 ints as a list, the text a millisecond)."""
    literal = "{" + ",".join(map(str, ids.tolist())) + "}"
    return Article.id == sa.any_(sa.cast(sa.bindparam("among", literal, type_=sa.Text),
                                         ARRAY(sa.BigInteger)))


def _pg_concepts_tsquery(concepts: list[set[int]]) -> sa.ColumnElement:
    """The tsquery of the articles tagged with one concept of each set of CONCEPTS, through
    the lexemes their vectors hold (migration 0011)."""
    text = " & ".join("(" + " | ".join(f"'{concept_lexeme(cid)}'" for cid in sorted(ids)) + ")"
                      for ids in concepts)
    return sa.cast(sa.bindparam("concepts", text, type_=sa.Text), TSQUERY)


def _pg_unmatched_ids(session: Session, query: ParsedQuery,
                      among: np.ndarray | None = None) -> np.ndarray:
    """The ids of every article QUERY does not match on PostgreSQL (of AMONG only, when
    given), from the GIN index alone: the lexeme every article's vector holds (migration 0010)
    and not QUERY's words. It reads two posting lists, not the rows of every match."""
    every = sa.cast(sa.literal(f"'{PG_EVERY_ARTICLE}'"), TSQUERY)
    unmatched = func.tsquery_and(every, func.tsquery_not(_pg_whole_tsquery(query)))
    if query.groups:  # words that are all stop words match nothing (not: all but exclusions)
        unmatched = sa.case((func.numnode(_pg_tsquery(query.groups)) == 0, every),
                            else_=unmatched)
    stmt = select(func.string_agg(sa.cast(Article.id, sa.Text), ",")).where(
        _vector.op("@@")(unmatched))
    if among is not None:
        stmt = stmt.where(_pg_among(among))
    return _ids_of(session.scalar(stmt))


def _pg_complementable(query: ParsedQuery) -> bool:
    """Whether the GIN index alone can tell which articles QUERY does not match: plain words
    and prefixes only (a phrase, or a word the parser splits, needs each row rechecked)."""
    terms = [*(t for group in query.groups for t in group), *query.excluded]
    return bool(terms) and all(re.fullmatch(r"\w+", t.text) for t in terms)


def _pg_matches_most(session: Session, columns: listing.Columns, query: ParsedQuery) -> bool:
    """Whether QUERY matches over COMPLEMENT_ABOVE of the newest PROBED articles (their rows
    read by id: OFFSET 0 keeps the planner from asking the GIN index for every match)."""
    probed = min(PROBED, len(columns.ids))
    if not probed:
        return False
    newest = (select(_vector.label("vector")).select_from(Article.__table__)
              .where(Article.id.between(int(columns.ids[-probed]), int(columns.ids[-1])))
              .offset(0).subquery())
    found = session.scalar(select(func.count()).select_from(newest).where(
        newest.c.vector.op("@@")(_pg_whole_tsquery(query))))
    return (found or 0) > COMPLEMENT_ABOVE * probed


def _pg_matching_ids(session: Session, query: ParsedQuery,
                     within: np.ndarray | None = None) -> np.ndarray:
    """The ids of every article QUERY's words match on PostgreSQL, as one string of the
    database's making: a search may match 100,000 articles, and a row each costs more than the
    matching. WITHIN: the only ids that can be wanted, a small part of all; it then reads only
    their rows instead of every match (45,000 of a million articles: 820 -> 200 ms)."""
    stmt = select(func.string_agg(sa.cast(Article.id, sa.Text), ",")).where(_pg_match(query))
    if within is not None:
        stmt = stmt.where(_pg_among(within))
    return _ids_of(session.scalar(stmt))


def _fts5_ids(cursor: sqlite3.Cursor, expression: str,
              among: np.ndarray | None = None) -> np.ndarray:
    """The ids of every article the FTS5 EXPRESSION matches (of AMONG only, each looked up,
    when given), as one string of SQLite's making: a row each costs more than the matching."""
    sql = "SELECT group_concat(rowid) FROM article_fts WHERE article_fts MATCH ?"
    if among is None:
        return _ids_of(cursor.execute(sql, (expression,)).fetchone()[0])
    return _ids_of(cursor.execute(f"{sql} AND rowid IN (SELECT value FROM json_each(?))",
                                  (expression, json.dumps(among.tolist()))).fetchone()[0])


def _ids_of(listed: str | None) -> np.ndarray:
    """The ids of a comma-separated list (group_concat's, string_agg's)."""
    return np.fromstring(listed or "", sep=",", dtype=np.int64)


# A search whose words match more than this share of the newest PROBED articles asks the
# full-text index for the articles they do not match. On SQLite a million matches' ids cost
# 220 ms to read as text, the few hundred articles without the word next to nothing, and FTS5
# finds those walking the same lists (the token every article holds, db/fts_sqlite.py, NOT the
# words); counting the matches among the newest thousand ids costs it a fraction of a
# millisecond. On PostgreSQL every match's row is visited for its id (100 ms per 100,000).
COMPLEMENT_ABOVE = 0.5
PROBED = 1000
LACKING_AT_MOST = 1000  # articles without the token (each looked up) beyond which it does not
WORDS_ALONE_ABOVE = 0.1  # share of the articles under a search's concepts (see _matches)
# PostgreSQL's counterpart: a lexeme in every article's search vector (migration 0010), which
# a reader's words cannot make (a lexeme of theirs never holds a space). Asking for the articles
# a query does not match reads two posting lists of the GIN index (74 ms at a million
# articles); asking for the matches among a search's candidates visits each candidate's row
# (35 ms for 10,000 candidates there, 134 ms for 20,000), cheaper up to this share of articles.
PG_EVERY_ARTICLE = "every article"
PG_AMONG_SHARE = 0.015
# Ids to rank that fill more than this share of the ids between their first and last (a broad
# search's newest 10,000 matches) are read as that range of the primary key rather than looked
# up one by one: 10,000 rows at a million articles, 62 -> 43 ms. The articles in the range not
# asked for are ranked too and left out after: above this share, ranking them costs less than
# the lookups it saves.
PG_RANGE_ABOVE = 0.75
# Ids to rank under concepts are found through the concepts' lexemes in the GIN index (migration
# 0011) when the articles tagged with them number at most this many times the ids: 4,620 ids
# under a concept at a million articles, 21 -> 13 ms (a primary-key lookup each costs about 1.6
# times a row the bitmap of 'concept 12' & words brings, and those not asked for are left out).
PG_CONCEPTS_UP_TO = 1.5


def _matches(session: Session, columns: listing.Columns, query: ParsedQuery,
             concepts: list[set[int]], mask: np.ndarray, candidates: int) -> np.ndarray:
    """Which articles of the listing index QUERY's words match (those in MASK at least, of
    which there are CANDIDATES)."""
    if session.get_bind().dialect.name == "postgresql":
        # only PostgreSQL is asked among the candidates: SQLite's index holds the concepts
        within = columns.ids[mask] if candidates * 4 < len(columns.ids) else None
        if (within is None or len(within) > PG_AMONG_SHARE * len(columns.ids)) \
                and _pg_complementable(query) and _pg_matches_most(session, columns, query):
            return ~listing.members(columns, listing.unmatched(
                columns, f"pg: {query.groups!r} {query.excluded!r}",
                lambda among: _pg_unmatched_ids(session, query, among)))
        return listing.members(columns, _pg_matching_ids(session, query, within))
    match = to_fts5(query, concepts)
    # Under concepts that hold many of the articles the words are matched without them (MASK
    # holds the concepts' articles): FTS5 walks the concepts' tokens at about ten times the
    # cost an article of walking the every-article token for the complement below.
    words = to_fts5(query) if candidates > WORDS_ALONE_ABOVE * len(columns) else match
    cursor = session.connection().connection.driver_connection.cursor()
    lacking = mask & ~columns.whole  # articles written without the token: looked up by id
    if not _matches_most(cursor, columns, words) or np.count_nonzero(lacking) > LACKING_AT_MOST:
        return listing.members(columns, _fts5_ids(cursor, match))
    complement = f'(tag_terms : "{EVERY_ARTICLE}") NOT ({words})'
    unmatched = listing.unmatched(columns, complement,
                                  lambda among: _fts5_ids(cursor, complement, among))
    matched = columns.whole & ~listing.members(columns, unmatched)
    if lacking.any():
        matched |= listing.members(columns, _fts5_ids(cursor, words, columns.ids[lacking]))
    return matched


def _matches_most(cursor: sqlite3.Cursor, columns: listing.Columns, match: str) -> bool:
    """Whether MATCH matches over COMPLEMENT_ABOVE of the newest PROBED articles."""
    probed = min(PROBED, len(columns.ids))
    if not probed:
        return False
    (found,) = cursor.execute(
        "SELECT count(*) FROM article_fts WHERE article_fts MATCH ? AND rowid BETWEEN ? AND ?",
        (match, int(columns.ids[-probed]), int(columns.ids[-1]))).fetchone()
    return found > COMPLEMENT_ABOVE * probed


# A page's articles come without their bodies: no page, feed or answer of the API shows one
# (their snippets are made in the database), and a news article's is some kilobytes.
_NO_BODY = defer(Article.body, raiseload=True)  # a use of it would be a mistake: it fails
# the articles of a page with their sources, built once (building it took a third as long as
# running it)
_PAGE_ARTICLES = (select(Article).where(Article.id.in_(sa.bindparam("ids", expanding=True)))
                  .options(joinedload(Article.source), _NO_BODY))


def _listed_search(session: Session, index: tuple[listing.Columns, listing.ConceptTable],
                   query: ParsedQuery, concept_slugs: list[str], page: int, per_page: int,
                   by_rank: bool, facet_limit: int, filters: Filters) -> SearchPage:
    """search_articles through the listing index: the database's full-text index finds the
    matching ids (and ranks the ones to show), the index does the rest."""
    columns, concepts = index
    mask = columns.listed.copy()
    if filters.kinds:
        mask &= np.isin(columns.kind, [listing.KIND_CODE[k] for k in filters.kinds
                                       if k in listing.KIND_CODE])
    if filters.sources:
        source_ids = list(session.scalars(select(Source.id).where(
            Source.name.in_(filters.sources))))
        mask &= np.isin(columns.source, source_ids)
    if filters.since:
        mask &= columns.date >= listing.micros(datetime.combine(filters.since, time(), UTC))
    if filters.until:
        day_after = datetime.combine(filters.until + timedelta(days=1), time(), UTC)
        mask &= columns.date < listing.micros(day_after)
    if filters.added_after:
        mask &= columns.added > listing.micros(filters.added_after)
    if filters.added_until:
        mask &= columns.added <= listing.micros(filters.added_until)
    concept_sets = [concepts.with_descendants(slug) for slug in concept_slugs]
    tagged: np.ndarray | None = None  # the articles tagged with one concept of each set
    for ids in concept_sets:
        of_set = listing.concept_mask(columns, ids)
        tagged = of_set if tagged is None else tagged & of_set
        mask &= of_set
    offset = (page - 1) * per_page
    ranked, ranks = np.empty(0, dtype=np.int64), np.empty(0)  # ids, and their ranks
    candidates = int(np.count_nonzero(mask))
    # how many articles carry the concepts, which ranking weighs (a pass over every article)
    tagged_count = int(np.count_nonzero(tagged)) if by_rank and tagged is not None else 0
    if by_rank and candidates <= RANKED_MATCHES:
        # few enough candidates to rank them all: one pass finds and ranks their matches
        ranked, ranks = _ranks(session, query, columns.ids[mask], concept_sets,
                               len(columns.ids), tagged_count)
        mask &= listing.members(columns, ranked)
        if int(np.count_nonzero(mask)) != len(ranked):  # the index and the text disagreed
            kept = listing.within(columns, ranked, mask)
            ranked, ranks = ranked[kept], ranks[kept]
    elif not query.is_empty:
        mask &= _matches(session, columns, query, concept_sets, mask, candidates)
    total = int(np.count_nonzero(mask))
    # the page's matches, and the newest RANKED_MATCHES and those after them when ranked
    ordered = listing.newest_first(columns, mask, max(offset, RANKED_MATCHES) + per_page)
    if by_rank and total > RANKED_MATCHES and offset < RANKED_MATCHES:
        ranked, ranks = _ranks(session, query, np.sort(columns.ids[ordered[:RANKED_MATCHES]]),
                               concept_sets, len(columns.ids), tagged_count)
    if by_rank and offset < len(ranked):
        published = columns.published[listing.positions(columns, ranked)]
        # best first; among equals, as lists sort: newest, undated last, then by id
        best = np.lexsort((-ranked, -published, published == 0, ranks))
        page_ids = [int(i) for i in ranked[best[offset:offset + per_page]]]
        if len(page_ids) < per_page:  # past the ranked ones: the rest, newest first
            rest = columns.ids[ordered[len(ranked):]]
            page_ids += [int(i) for i in rest[:per_page - len(page_ids)]]
    else:  # past the ranked ones (which are the newest matches), or not ranked at all
        page_ids = [int(i) for i in columns.ids[ordered[offset:offset + per_page]]]
    loaded = {a.id: a for a in session.scalars(_PAGE_ARTICLES, {"ids": page_ids})}
    rows = [loaded[i] for i in page_ids if i in loaded]
    found_snippets = {}
    if _rankable(session, query):
        snippets = _pg_snippets if session.get_bind().dialect.name == "postgresql" else _snippets
        found_snippets = snippets(session, query, page_ids)
    hits = [Hit(article, found_snippets.get(article.id)) for article in rows]
    found: dict[str, list[FacetValue]] = {}
    if facet_limit > 0:
        found = _listed_facets(session, columns, concepts, mask, facet_limit)
    return SearchPage(hits, total, page, per_page, found)


def _listed_facets(session: Session, columns: listing.Columns, concepts: listing.ConceptTable,
                   mask: np.ndarray, limit: int) -> dict[str, list[FacetValue]]:
    """The facets of the articles in MASK, as facets() and other_facets() count them."""
    result: dict[str, list[FacetValue]] = {}
    counted = listing.tally(columns, mask, concepts.size)
    counts = counted.concepts
    present = [concepts.rows[int(cid)] for cid in np.flatnonzero(counts)]
    present.sort(key=lambda row: (-counts[row.id], row.name))
    for row in present:
        values = result.setdefault(row.label, [])
        if len(values) < limit:
            values.append(FacetValue(row.label, row.slug, row.name, int(counts[row.id])))
    by_kind = sorted((-int(n), listing.KINDS[code])
                     for code, n in enumerate(counted.kinds[:len(listing.KINDS)]) if n)
    if by_kind:
        result["KIND"] = [FacetValue("KIND", kind, kind, -n) for n, kind in by_kind[:limit]]
    sources = {int(columns.source_values[code]): int(counted.sources[code])
               for code in np.flatnonzero(counted.sources) if columns.source_values[code] >= 0}
    if sources:
        names = dict(session.execute(select(Source.id, Source.name).where(
            Source.id.in_(list(sources)))).all())
        by_source = sorted((-n, names[i]) for i, n in sources.items() if i in names)
        result["SOURCE"] = [FacetValue("SOURCE", name, name, -n) for n, name in by_source[:limit]]
    years = [(str(columns.year_values[code]), int(counted.years[code]))
             for code in np.flatnonzero(counted.years)[::-1][:limit]]
    if years:
        result["YEAR"] = [FacetValue("YEAR", year, year, n) for year, n in years]
    return result


def search_articles(
    session: Session,
    query: ParsedQuery,
    concept_slugs: list[str] | None = None,
    *,
    page: int = 1,
    per_page: int = 20,
    sort: str = "relevance",
    facet_limit: int = 12,
    filters: Filters | None = None,
) -> SearchPage:
    """One page of the listed articles that match QUERY, CONCEPT_SLUGS (each, with its
    descendants) and FILTERS, by relevance (where the query can be ranked) or newest first,
    with the count of all of them and, unless FACET_LIMIT is 0, their facets."""
    concept_slugs = concept_slugs or []
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    by_rank = _rankable(session, query) and sort != "date"
    index = listing.listing_for(session)
    if index is not None:
        return _listed_search(session, index, query, concept_slugs, page, per_page, by_rank,
                              facet_limit, filters or Filters())
    return _sql_search(session, query, concept_slugs, page, per_page, by_rank, facet_limit,
                       filters)


def _sql_search(session: Session, query: ParsedQuery, concept_slugs: list[str], page: int,
                per_page: int, by_rank: bool, facet_limit: int, filters: Filters | None
                ) -> SearchPage:
    """search_articles in SQL alone, where there is no listing index."""
    newest = (Article.published_at.is_(None), Article.published_at.desc(), Article.id.desc())
    rankable = _rankable(session, query)
    matching: sa.Subquery | sa.TableClause
    offset = (page - 1) * per_page
    sqlite = session.get_bind().dialect.name == "sqlite"
    if facet_limit > 0 and sqlite:
        # the count, the page and five facet queries all read the matches: find them once
        matching = _materialise(session, _matching(session, query, concept_slugs, filters,
                                                   ranked=by_rank), by_rank)
        total = session.scalar(select(func.count()).select_from(matching)) or 0
        if by_rank:  # the page's ids first (equal ranks newest first), then their articles
            ids = list(session.scalars(select(_hits.c.id)
                                       .join(Article, Article.id == _hits.c.id)
                                       .order_by(_hits.c.rank, *newest)
                                       .limit(per_page).offset(offset)))
            loaded = {a.id: a for a in session.scalars(
                select(Article).where(Article.id.in_(ids))
                .options(selectinload(Article.source), _NO_BODY))}
            rows = [loaded[i] for i in ids if i in loaded]
        else:
            rows = list(session.scalars(
                select(Article).where(Article.id.in_(select(_hits.c.id)))
                .options(selectinload(Article.source), _NO_BODY)
                .order_by(*newest).limit(per_page).offset(offset)))
    else:  # the count leaves the rank column unread, so the database skips it
        matching = _matching(session, query, concept_slugs, filters, ranked=by_rank).subquery()
        total = session.scalar(select(func.count()).select_from(matching)) or 0
        order = (matching.c.rank, *newest) if by_rank else newest
        rows = list(session.scalars(
            select(Article)
            .join(matching, matching.c.id == Article.id)
            .options(selectinload(Article.source), _NO_BODY)
            .order_by(*order)
            .limit(per_page)
            .offset(offset)))
    # snippets for the page's articles only: making one costs more than ranking a match
    found_snippets = {}
    if rankable:
        snippets = _snippets if sqlite else _pg_snippets
        found_snippets = snippets(session, query, [a.id for a in rows])
    hits = [Hit(article, found_snippets.get(article.id)) for article in rows]
    found = {}
    if facet_limit > 0:  # a list with no facets (the home page) skips counting them
        found = facets(session, matching, facet_limit)
        found.update(other_facets(session, matching, facet_limit))
    return SearchPage(hits, total, page, per_page, found)


def other_facets(session: Session, matching: sa.Subquery | sa.TableClause, limit: int
                 ) -> dict[str, list[FacetValue]]:
    """Matching articles by kind (news, paper, preprint, trial), source and year."""
    result: dict[str, list[FacetValue]] = {}
    year = date_text(session, article_date(), "%Y")
    for label, column, order in (("KIND", Article.kind, None), ("SOURCE", Source.name, None),
                                 ("YEAR", year, year.desc())):
        stmt = (select(column, func.count()).select_from(Article)
                .where(Article.id.in_(select(matching.c.id))))
        if label == "SOURCE":
            stmt = stmt.join(Source, Source.id == Article.source_id)
        stmt = stmt.where(column.is_not(None)).group_by(column)
        stmt = stmt.order_by(order if order is not None else func.count().desc(), column)
        values = [FacetValue(label, str(value), str(value), int(count))
                  for value, count in session.execute(stmt.limit(limit))]
        if values:
            result[label] = values
    return result


def facets(session: Session, matching: sa.Subquery | sa.TableClause, limit: int
           ) -> dict[str, list[FacetValue]]:
    """Articles under each concept among the matching ones, by label, largest first.

    An article tagged with a concept counts for its ancestors too, as filtering on a concept
    includes its descendants: a facet's count is what clicking it shows."""
    concepts = {cid: (label, slug, name, parent)
                for cid, label, slug, name, parent in session.execute(
                    select(Concept.id, Concept.label, Concept.slug, Concept.name,
                           Concept.parent_slug))}
    chains = ancestor_chains((cid, slug, parent) for cid, (_, slug, _, parent) in concepts.items())
    members: dict[int, set[int]] = defaultdict(set)
    for article_id, concept_id in session.execute(
        select(ArticleConcept.article_id, ArticleConcept.concept_id)
        .where(ArticleConcept.article_id.in_(select(matching.c.id)))
    ):
        for cid in chains[concept_id]:
            members[cid].add(article_id)
    ranked = sorted(members.items(), key=lambda kv: (-len(kv[1]), concepts[kv[0]][2]))
    result: dict[str, list[FacetValue]] = {}
    for cid, articles in ranked:
        label, slug, name, _ = concepts[cid]
        values = result.setdefault(label, [])
        if len(values) < limit:
            values.append(FacetValue(label, slug, name, len(articles)))
    return result
