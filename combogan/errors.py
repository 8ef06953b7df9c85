"""The one exception type the CLI turns into a clean `error: …` line."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, wrong flag): shown as one line, exit 1."""

    exit_code = 1


class UsageError(UserError):
    """A malformed command line or config key: exit 2, like click's own usage errors."""

    exit_code = 2
