"""One story, one entry: near-duplicate articles grouped by MinHash locality-sensitive hashing.

The signature (128 MinHash values) is computed by the crawler; here it is cut into 32 bands of 4
values, each band hashed to a key and stored, so candidates are the articles sharing any band key
(an index lookup on either backend), confirmed by the share of equal values (the estimated
Jaccard similarity of their shingles).
"""

from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from db.models import Article, ArticleBand, ArticleSignature

BANDS, ROWS = 32, 4
NUM_PERM = BANDS * ROWS
THRESHOLD = 0.5  # estimated Jaccard similarity of 5-word shingles that makes one story


def _pack(signature: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(signature)}Q", *signature)


def _unpack(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 8}Q", data)


def band_keys(signature: Sequence[int]) -> list[tuple[int, int]]:
    if len(signature) != NUM_PERM:
        raise ValueError(f"a signature has {NUM_PERM} values, not {len(signature)}")
    keys = []
    for band in range(BANDS):
        values = _pack(signature[band * ROWS:(band + 1) * ROWS])
        digest = hashlib.blake2b(values, digest_size=8, person=band.to_bytes(2, "big")).digest()
        keys.append((band, int.from_bytes(digest, "big", signed=True)))
    return keys


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def assign_story(session: Session, article: Article, signature: Sequence[int],
                 new: bool = False) -> int | None:
    """Index ARTICLE's signature and join it to the story of its most similar earlier article;
    returns that story's id (None: it starts a story of its own). NEW: the article was just
    inserted, so it has no index entries to replace."""
    keys = band_keys(signature)
    if not new:
        session.execute(delete(ArticleBand).where(ArticleBand.article_id == article.id))
    candidates = set(session.scalars(
        select(ArticleBand.article_id).where(
            ArticleBand.key.in_([key for _, key in keys]),  # band-specific keys: index lookup
            ArticleBand.article_id != article.id,
        )
    ))
    best, best_score = None, THRESHOLD
    if candidates:
        rows = session.execute(
            select(ArticleSignature.article_id, ArticleSignature.signature, Article.story_id)
            .join(Article, Article.id == ArticleSignature.article_id)
            .where(ArticleSignature.article_id.in_(candidates))
        )
        for other_id, other_signature, other_story in rows:
            score = similarity(signature, _unpack(other_signature))
            if score >= best_score:
                best, best_score = (other_story or other_id), score
    if best is not None:
        best = _join(session, article, best)
    article.story_id = best
    stored = None if new else session.get(ArticleSignature, article.id)
    if stored is None:
        session.execute(insert(ArticleSignature.__table__),
                        [{"article_id": article.id, "signature": _pack(signature)}])
    else:
        stored.signature = _pack(signature)
    # one executemany, not 32 ORM objects: this runs once per stored article
    session.execute(insert(ArticleBand.__table__),
                    [{"band": b, "key": k, "article_id": article.id} for b, k in keys])
    session.flush()
    return best


def _sort_key(article: Article) -> tuple[bool, object, int]:
    return (article.published_at is None, article.published_at, article.id)


def _join(session: Session, article: Article, lead_id: int) -> int | None:
    """Put ARTICLE in the story led by LEAD_ID. The story is led by its earliest-published
    article (the original), so an earlier one joining takes the lead; returns the lead's id, or
    None when ARTICLE itself now leads."""
    lead = session.get(Article, lead_id)
    if lead is None or lead.id == article.id:
        return None
    if _sort_key(lead) <= _sort_key(article):
        return lead.id
    session.execute(
        update(Article)
        .where((Article.story_id == lead.id) | (Article.id == lead.id))
        .values(story_id=article.id)
    )
    return None


def also_reported(session: Session, article_ids: Iterable[int]) -> dict[int, list[Article]]:
    """For each story-leading article, the other articles of its story, earliest first."""
    ids = [int(i) for i in article_ids]
    found: dict[int, list[Article]] = defaultdict(list)
    if not ids:
        return found
    # most articles lead no story: which of IDS do is asked first, through the driver (the
    # ORM's statement handling cost 15 times the index lookup, a twentieth of a search page)
    cursor = session.connection().connection.driver_connection.cursor()
    listed = ",".join(map(str, ids))
    cursor.execute(f"SELECT DISTINCT story_id FROM {Article.__tablename__} "
                   f"WHERE story_id IN ({listed})")
    leads = [lead for (lead,) in cursor.fetchall()]
    if leads:
        for member in session.scalars(
            select(Article).where(Article.story_id.in_(leads)).order_by(Article.id)
        ):
            found[member.story_id].append(member)  # type: ignore[index]
    return found


def story_of(session: Session, article: Article) -> list[Article]:
    """The other articles telling ARTICLE's story: its lead first, then the rest."""
    lead_id = article.story_id or article.id
    lead = [session.get(Article, lead_id)] if article.story_id else []
    members = also_reported(session, [lead_id]).get(lead_id, [])
    return [a for a in lead + members if a is not None and a.id != article.id]
