"""The errors the CLI turns into exit codes: one line each, no traceback."""


class UserError(Exception):
    """Bad input from the user: a recipe, a name, a data folder, a checkpoint (exit code 2).

    The message must be one line that names the problem and, where it helps, the fix.
    """


class RunStopped(Exception):
    """A run that stopped on purpose, its work saved: a signal (exit 130 / 143)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
