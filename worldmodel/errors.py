"""The user-facing exception: anything the user can fix (config, paths, data) is raised as UserError."""


class UserError(Exception):
    """A problem with the user's input (config, paths, data): printed as one line, exit code 2."""
