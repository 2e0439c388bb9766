"""``tunedp ui``: the MLflow dashboard on the local tracking store, refused early when its port is taken.

MLflow is imported only once the port is known to be free.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tunedp.cli.output import UserError, console

__all__ = ["ui_command"]


def ui_command(
    port: Annotated[int, typer.Option("--port", help="Port of the dashboard.")] = 5000,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on; keep the loopback unless you mean to share it.")
    ] = "127.0.0.1",
) -> None:
    """Open the MLflow dashboard on the local tracking store (mlflow/); Ctrl-C stops it."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port: {port} must be in 1..65535")
    _check_port_free(host, port)
    from tunedp.observe.dashboard import serve_dashboard

    code = serve_dashboard(host=host, port=port, announce=lambda line: console.print(line, highlight=False))
    if code:
        raise typer.Exit(code)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on (the server's own bind error would be buried in its log)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (error.strerror or type(error).__name__).lower()
            raise UserError(f"--port: cannot listen on {host}:{port} ({reason}); choose another with --port") from None
