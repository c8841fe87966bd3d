"""Collection: Scrapy spiders and item pipelines. Every article enters the database through
these pipelines (normalize -> tag -> store); nothing else writes articles."""
