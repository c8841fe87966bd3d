"""Tagging and summarising: text in, entities and a summary out.

Knows nothing of Scrapy, Flask or the database; the crawler's tag pipeline and `immunofeed tag`
both call nlp.tagger.
"""
