"""`bbx model ...`: move the churn model's `champion` alias by hand, and see the history.

Automatic promotion (tasks/train.py, rules in models/promotion.py) is the normal
path; these commands are for an operator who must override it or undo it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bbx.settings import load_settings

model_app = typer.Typer(help="The model registry: champion, challenger, history.",
                        no_args_is_help=True)
ModelName = Annotated[str, typer.Option("--model", help="Registered model name.")]


def _registry(model: str):
    from tasks import registry

    registry.configure(load_settings(), model)
    return registry


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@model_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="Model version to make champion.")],
    model: ModelName = "churn",
    reason: Annotated[str, typer.Option(help="Why (recorded on the version).")] = "manual",
) -> None:
    """Point `champion` at VERSION (the replaced champion is recorded for rollback)."""
    registry = _registry(model)
    try:
        previous = registry.promote(model, version, f"bbx model promote: {reason}")
    except LookupError as exc:
        _fail(str(exc))
    if previous == version:
        typer.echo(f"{model} v{version} already is the champion")
    else:
        typer.echo(f"{model} champion: v{previous or '-'} → v{version}")


@model_app.command("rollback")
def rollback(model: ModelName = "churn") -> None:
    """Move `champion` back to the version the current champion replaced."""
    registry = _registry(model)
    try:
        current, previous = registry.rollback(model)
    except LookupError as exc:
        _fail(str(exc))
        return
    typer.echo(f"{model} champion rolled back: v{current} → v{previous}")


@model_app.command("list")
def list_versions(model: ModelName = "churn") -> None:
    """Versions, newest first, with aliases, training date and promotion history."""
    rows = _registry(model).model_versions(model)
    if not rows:
        _fail(f"no registered model '{model}'")
    for row in rows:
        typer.echo(f"v{row['version']:<4} {row['aliases']:<22} trained for "
                   f"{row['trained_as_of'] or '?':<10}  replaced v{row['promoted_from'] or '-'}"
                   f"  {row['promotion_reason'][:80]}")
