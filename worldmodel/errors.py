"""The exception for problems with the user's input, owned by no command so that every entry point shares it."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, paths, data): the CLI prints it as one line and exits with 2.

    It lives in its own module (not in ``worldmodel.cli``) because ``python -m worldmodel.cli`` runs the CLI as
    ``__main__``: a class defined there would be a different class from the one commands import and raise.
    """
