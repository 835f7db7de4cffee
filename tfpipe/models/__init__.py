"""The model zoo. Importing this package registers every family (one explicit import each)."""

from tfpipe.models import registry
from tfpipe.models.classification import mobilenet  # noqa: F401  (registers mobilenet_v2*)

build = registry.build
check = registry.check

__all__ = ["build", "check", "registry"]
