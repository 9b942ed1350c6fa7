"""Errors every layer may raise for bad user input."""


class UserError(Exception):
    """A bad input (config, spec, flag) the user can fix.

    The message names the field and the problem; the CLI prints it without a traceback and
    exits with status 2. Raise it before writing anything, so nothing already written is lost.
    """
