"""The one error type users see instead of a traceback."""


class TfpipeError(Exception):
    """Bad input or an unmet precondition, described for the user.

    `message` names the file, field or line and what is wrong; `hint` says what would be
    accepted or what to run. The CLI prints both on one line and exits with status 2.
    """

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class GateFailed(Exception):
    """A parity gate failed: the CLI exits with status 1 and names the metric."""
