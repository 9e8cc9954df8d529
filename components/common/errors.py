"""The one exception type a stage raises for bad input or an unusable environment."""


class SeamlessError(Exception):
    """A problem the user can fix, described in one sentence naming what is at fault.

    Components and the CLI print the message alone (no traceback) and exit non-zero.
    """
