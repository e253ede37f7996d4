"""`syncctl simulator ...`: serve the tritonX simulator (syncctl.simulator), and drive a running
one through its admin endpoints."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
import httpx

from syncctl.cli.edge import edge
from syncctl.errors import TritonXRefused, TritonXUnavailable
from syncctl.simulator.server import DEFAULT_TOKEN, ChaosConfig, SimulatorServer
from syncctl.tritonx import unreachable


@click.group()
def simulator() -> None:
    """The bundled tritonX simulator."""


@simulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--customers", default=1000, show_default=True, help="Population size.")
@click.option("--seed", default=1, show_default=True, help="Population seed.")
@click.option("--token", default=DEFAULT_TOKEN, show_default=True, help="Bearer token.")
@click.option("--chaos-duplicate", default=0.0, help="P(page repeats events).")
@click.option("--chaos-stale", default=0.0, help="P(page redelivers an older event).")
@click.option("--chaos-rate-limit", default=0.0, help="P(429 with Retry-After).")
@click.option("--chaos-server-error", default=0.0, help="P(503).")
@click.option("--chaos-slow", default=0.0, help="P(answer after --slow-seconds).")
@click.option("--slow-seconds", default=2.0, show_default=True, help="Delay of a slow answer.")
@click.option("--chaos-malformed", default=0.0, help="P(page has a malformed extra record).")
@click.option("--chaos-seed", default=1, show_default=True, help="Seed of the chaos.")
def serve(
    host: str,
    port: int,
    customers: int,
    seed: int,
    token: str,
    chaos_duplicate: float,
    chaos_stale: float,
    chaos_rate_limit: float,
    chaos_server_error: float,
    chaos_slow: float,
    slow_seconds: float,
    chaos_malformed: float,
    chaos_seed: int,
) -> None:
    """Serve the simulator until SIGTERM or SIGINT."""
    chaos = ChaosConfig(
        chaos_duplicate,
        chaos_stale,
        chaos_rate_limit,
        chaos_server_error,
        chaos_slow,
        slow_seconds,
        chaos_malformed,
        chaos_seed,
    )
    server = SimulatorServer(customers, seed, host=host, port=port, token=token, chaos=chaos)

    def stop(_signum: int, _frame: Any) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"tritonx simulator listening on {server.url}")
    server.serve_forever()


def _admin(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise TritonXRefused("the simulator URL is not an http:// or https:// URL") from exc
    except httpx.HTTPError as exc:
        # the host and the kind of failure; never the token
        raise TritonXUnavailable(
            f"the simulator at {url} cannot be reached: {unreachable(exc)}"
        ) from exc
    if response.status_code >= 400:
        raise TritonXRefused(
            f"{response.status_code}: {response.json().get('error')}", status=response.status_code
        )
    return response.json()


_URL = click.option(
    "--url",
    default="http://127.0.0.1:8765",
    show_default=True,
    envvar="TRITONX_URL",
    help="The running simulator.",
)
_TOKEN = click.option(
    "--token",
    default=DEFAULT_TOKEN,
    show_default=True,
    envvar="TRITONX_TOKEN",
    help="Bearer token.",
)


@simulator.command()
@_URL
@_TOKEN
@click.option("--n", default=100, show_default=True, help="How many changes.")
@click.option("--seed", default=1, show_default=True, help="Seed of the activity.")
@edge
def activity(url: str, token: str, n: int, seed: int) -> None:
    """Make random changes: edits, creations, merges, anonymisations, deletions."""
    click.echo(_admin(url, token, "POST", "/admin/activity", {"n": n, "seed": seed}))


@simulator.command()
@_URL
@_TOKEN
@click.argument("old")
@click.argument("into")
@edge
def merge(url: str, token: str, old: str, into: str) -> None:
    """Merge customer OLD into INTO."""
    click.echo(_admin(url, token, "POST", "/admin/merge", {"old": old, "into": into})["seq"])


@simulator.command()
@_URL
@_TOKEN
@click.argument("number")
@click.option("--reason-code", default="AVG", show_default=True)
@edge
def anonymise(url: str, token: str, number: str, reason_code: str) -> None:
    """Anonymise a customer."""
    body = {"reason_code": reason_code}
    click.echo(_admin(url, token, "POST", f"/admin/customers/{number}/anonymise", body)["seq"])


@simulator.command()
@_URL
@_TOKEN
@click.argument("number")
@edge
def delete(url: str, token: str, number: str) -> None:
    """Delete a customer."""
    click.echo(_admin(url, token, "DELETE", f"/admin/customers/{number}")["seq"])


COMMANDS: tuple[click.Command, ...] = (simulator,)
