"""The real `syncctl` command in subprocesses: a simulator served by `syncctl simulator serve`
and the controller pointed at it and at this test's database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SYNCCTL = [sys.executable, "-m", "syncctl"]
TOKEN = "acceptance-token"


def syncctl(
    *args: str,
    dsn: str | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    input: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion, standard input a pipe (not a terminal) holding `input`."""
    command = [*SYNCCTL, *(["--dsn", dsn] if dsn else []), *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        check=False,
    )


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[str]

    def admin(self, method: str, path: str, json: object = None) -> httpx.Response:
        response = httpx.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            json=json,
        )
        response.raise_for_status()
        return response


@pytest.fixture
def simulator_factory(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(*options: str) -> Simulator:
        process = subprocess.Popen(
            [*SYNCCTL, "simulator", "serve", "--port", "0", "--token", TOKEN, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on " in line, f"simulator did not start: {line!r}"
        simulator = Simulator(line.rsplit(" ", 1)[-1].strip(), process)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.process.send_signal(signal.SIGTERM)
        try:
            simulator.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            simulator.process.kill()
            simulator.process.communicate()
