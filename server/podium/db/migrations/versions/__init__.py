"""The revisions, oldest first by number; Alembic chains them by their ``down_revision``."""
