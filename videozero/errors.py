"""The error type users see: one sentence naming the culprit and what to do, never a traceback."""


class VideozeroError(Exception):
    """Bad input or environment, reported to the user as a single sentence."""
