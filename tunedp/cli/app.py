"""The command tree and its entry point: the typer app with every command in help order, ``--version``, ``main``.

``main`` is where every user error ends the same way: one line on stderr
that names the field and the fix, exit code 2, and nothing written or
charged. The commands themselves live one family a module (``plan``,
``search``, ``budget_setup``/``budget_views``, ``ledger_admin``, ``results``,
``audit``, ``ui``, ``starters``); they are registered here, in the order
``tunedp --help`` lists them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tunedp.cli.audit import audit_command
from tunedp.cli.budget_setup import budget_bind, budget_init, budget_migrate
from tunedp.cli.budget_views import budget_history, budget_show, budget_verify
from tunedp.cli.ledger_admin import ledger_grant, ledger_revoke, ledger_setup
from tunedp.cli.output import console, err_console, print_error
from tunedp.cli.plan import plan_command
from tunedp.cli.results import predict_command, report_command
from tunedp.cli.search import search_command
from tunedp.cli.starters import init_command
from tunedp.cli.ui import ui_command
from tunedp.errors import UserFacingError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tunedp",
    help="Differentially private hyperparameter tuning, charged against one global privacy budget.\n\n"
    "Where things live: ledgers in $TUNEDP_HOME/ledgers (default ~/.local/share/tunedp/ledgers); the MLflow "
    "store in the source checkout's mlflow/ or, for an installed package, $TUNEDP_HOME/mlflow "
    "($TUNEDP_MLFLOW_DIR overrides it); a search's results in ./runs/<search id> (--output).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
budget_app = typer.Typer(help="The global privacy budget (ledger) of a protected dataset.", no_args_is_help=True)
app.add_typer(budget_app, name="budget")
ledger_app = typer.Typer(help="A team's shared PostgreSQL ledger: set it up, grant analysts.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")

app.command("plan")(plan_command)
app.command("init")(init_command)
app.command("search")(search_command)
app.command("predict")(predict_command)
app.command("report")(report_command)
app.command("audit")(audit_command)
app.command("ui")(ui_command)

budget_app.command("init")(budget_init)
budget_app.command("bind")(budget_bind)
budget_app.command("show")(budget_show)
budget_app.command("history")(budget_history)
budget_app.command("verify")(budget_verify)
budget_app.command("migrate")(budget_migrate)

ledger_app.command("setup")(ledger_setup)
ledger_app.command("grant")(ledger_grant)
ledger_app.command("revoke")(ledger_revoke)


def _version(value: bool) -> None:
    if value:
        from tunedp import __version__

        console.print(f"tunedp {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True, metavar=""),
    ] = False,
) -> None:
    """Differentially private hyperparameter tuning, charged against one global privacy budget."""
    from tunedp.run.scratch import remove_dead_scratch

    # What a killed driver's Ray and Tune left (trial folders, worker logs: K) goes with the next command.
    remove_dead_scratch()


def main(argv: list[str] | None = None) -> None:
    """Run the app; map every user error to one line and exit code 2."""
    command = typer.main.get_command(app)
    try:
        # standalone_mode=False: parsing errors come to us as exceptions, so
        # they print as one line instead of click's usage block.
        result = command.main(args=argv, prog_name="tunedp", standalone_mode=False)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help is printed already; a bare `tunedp` is not an error
        print_error(_click_message(error))
        sys.exit(2)
    except UserFacingError as error:  # the CLI's own UserError is one
        print_error(str(error))
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)


def _click_message(error: typer.TyperException) -> str:
    """One line from a command-line parsing error, naming the option when there is one."""
    message = error.format_message().splitlines()[0] if error.format_message() else type(error).__name__
    param = getattr(error, "param", None)
    names = getattr(param, "opts", None)
    if names and names[0] not in message:
        return f"{names[0]}: {message}"
    return message
