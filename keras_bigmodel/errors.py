"""The error type for problems a user can cause and fix."""


class UserError(Exception):
    """Bad usage or bad input: a missing file or column, a wrong value, an invalid config.

    The message names the file, column, row or option at fault and says what to do. The
    command line prints it on one line and exits with code 2; anything else is a bug.
    """
