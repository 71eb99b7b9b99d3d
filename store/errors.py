"""Errors the store raises for users: one sentence naming the culprit and what to do."""


class StoreError(Exception):
    """A store could not be opened, migrated or queried because of the user's input or environment."""
