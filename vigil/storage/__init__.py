"""PostgreSQL storage shared by every service: schema, registry look-ups, sinks."""


class StorageError(RuntimeError):
    """The database refused or lost a request; the message says which and why."""
