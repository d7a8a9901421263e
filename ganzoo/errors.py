"""The one user-error type: the CLI turns it into exit code 2 and one line, no traceback."""


class UserError(Exception):
    """Bad input from the user: a recipe, a name, a data folder, a checkpoint.

    The message must be one line that names the problem and, where it helps, the fix.
    """
