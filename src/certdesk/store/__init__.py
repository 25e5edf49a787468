"""Database tables, connections and migrations (SQLAlchemy Core + Alembic)."""
