"""The exceptions syncctl raises. Each docstring is its default message; messages name customer
numbers and event ids at most, never personal data. psycopg and httpx errors are wrapped at the
boundary where they occur (`raise X from exc`)."""

from __future__ import annotations


class SyncctlError(Exception):
    """syncctl failed."""

    exit_code = 1  # of the `syncctl` command this error ends

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.__class__.__name__)


class DatabaseRefused(SyncctlError):
    """The database refused or failed the operation."""

    def __init__(self, message: str | None = None, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class EngineError(DatabaseRefused):
    """The database refused or failed the operation."""


class EngineRefusal(EngineError):
    """The operation is impossible (a merge into itself, an unknown customer, ...)."""


class DeadLetterNotFound(EngineRefusal):
    """There is no dead letter for that inbox row."""


class GdprError(DatabaseRefused):
    """The database refused or failed the GDPR operation."""


class GdprRefusal(GdprError):
    """The operation is not allowed (unknown policy, wrong state, missing consent, ...)."""


class SubjectNotFound(GdprRefusal):
    """There is no local customer with that number or id."""


class ConfigurationError(SyncctlError):
    """The configuration is incomplete or contradictory."""


class SettingMissing(ConfigurationError):
    """A setting the command needs is missing or malformed: a usage error, as click's."""

    exit_code = 2


class DatabaseUnavailable(SyncctlError):
    """The database cannot be reached."""


class EmbeddedPostgresError(SyncctlError):
    """The embedded PostgreSQL server could not be started."""


class MigrationError(SyncctlError):
    """The database schema is not at the revision this syncctl expects."""


class TritonXError(SyncctlError):
    """tritonX answered with an error."""


class TritonXUnavailable(TritonXError):
    """tritonX is unavailable for now (rate limit, server error or time-out); try again later."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TritonXProtocolError(TritonXError):
    """tritonX answered with something that is not the documented contract."""


class TritonXRefused(TritonXError):
    """tritonX refused the request for good (a 4xx other than 408 and 429, or a URL it cannot
    be asked at); retrying the same request will not help."""

    state = "refused"

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenRefused(TritonXRefused):
    """tritonX refused the bearer token (401 or 403): every request will be refused until the
    token (or its rights) change."""

    state = "token refused"


class InvalidCustomerNumber(TritonXRefused):
    """Not a tritonX customer number (1 to 32 letters and digits); nothing was sent."""


class Interrupted(SyncctlError):
    """Stopped by a signal before the work was done; what was done is committed."""

    def __init__(self, message: str | None = None, *, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SimulatorConflict(ValueError):
    """The change is impossible in the simulated customer's present state (HTTP 409)."""


class CursorMoved(SyncctlError):
    """Another controller moved the cursor while this one was staging a page."""


class PageNotStaged(SyncctlError):
    """The database decided fewer events than the page held (the session's page lost rows
    between the COPY and the staging): the transaction is rolled back, the cursor stays, and
    the page is staged again."""


class MappingError(SyncctlError):
    """The mapping cannot be used."""


class MappingInvalid(MappingError):
    """The mapping file is not a valid format-1 mapping: each problem is one line
    `FILE:LINE: path: problem`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class MappingRefused(DatabaseRefused, MappingError):
    """The database refused the mapping."""


class MappingNotInstalled(MappingError):
    """No mapping is installed in this database."""


class MappingCompilerMissing(MappingError):
    """The mapping compiler is not installed in this database (no sync.install_mapping)."""
