"""certdesk: the whole life of personal certificates kept on USB tokens."""

# The one place the version is written: pyproject.toml reads it (dynamic), /healthz, the API
# docs and the CLI show it, CHANGELOG.md names it (tests/test_readme.py checks they agree).
__version__ = "0.3.0"
