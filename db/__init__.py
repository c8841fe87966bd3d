"""Storage: SQLAlchemy models, sessions, migrations and the query functions the rest of the
project reads and writes through. The bottom layer: it imports nothing else of ImmunoFeed."""
