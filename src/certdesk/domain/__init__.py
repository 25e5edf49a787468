"""Pure policy and types. Nothing here does I/O or reads the clock: `now` is always passed in."""
