"""One spider per source type."""
