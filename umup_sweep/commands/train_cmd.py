"""`umup-sweep train`: run one proxy trial from flags or a small YAML and print the result."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec


def _with_overrides(
    spec: TrialSpec,
    model: dict[str, Any],
    train: dict[str, Any],
    data: dict[str, Any],
    seed: int | None,
) -> TrialSpec:
    from umup_sweep.errors import ConfigError

    def replace(obj: Any, values: dict[str, Any], section: str) -> Any:
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return obj
        if "width" in values or "head_dim" in values:
            values.setdefault("n_heads", None)
        try:
            return dataclasses.replace(obj, **values)
        except ValueError as exc:
            raise ConfigError("<flags>", section, str(exc)) from None

    return dataclasses.replace(
        spec,
        model=replace(spec.model, model, "model"),
        train=replace(spec.train, train, "train"),
        data=replace(spec.data, data, "data"),
        seed=spec.seed if seed is None else seed,
    )


def train(
    config: Path | None = typer.Argument(
        None,
        help="Optional trial YAML with `model:`, `train:`, `data:`, `seed:` sections. "
        "Flags override it.",
    ),
    width: int | None = typer.Option(None, help="Model width (d_model)."),
    depth: int | None = typer.Option(None, help="Number of transformer blocks."),
    parametrization: str | None = typer.Option(
        None, "--parametrization", "-p", help="umup (default) or sp (standard, the control)."
    ),
    lr: float | None = typer.Option(None, help="Peak learning rate (u-μP: η, default 1.0)."),
    steps: int | None = typer.Option(None, help="Training steps."),
    batch_size: int | None = typer.Option(None, help="Sequences per step."),
    seq_len: int | None = typer.Option(None, help="Tokens per sequence."),
    data: str | None = typer.Option(
        None,
        help="Corpus: 'stdlib' (default, no download), a text file/folder/glob, or a "
        "uint16 .bin/.npy token file.",
    ),
    seed: int | None = typer.Option(None, help="Seed for init and batches."),
    threads: int | None = typer.Option(None, help="Torch threads for this trial."),
    curve: Path | None = typer.Option(None, help="Write the loss curve to this CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train one proxy and print its losses, speed and status.

    Examples:

      umup-sweep train --width 64 --depth 2 --steps 300 --lr 0.5

      umup-sweep train trial.yaml --parametrization sp --lr 0.004
    """
    from umup_sweep.config import load_trial  # the trial YAML's schema

    spec = load_trial(config) if config is not None else TrialSpec(ModelSpec(), TrainSpec())
    if parametrization is not None and parametrization not in ("umup", "sp"):
        from umup_sweep.errors import ConfigError

        raise ConfigError(
            "<flags>", "--parametrization", f"expected umup or sp, got {parametrization!r}"
        )
    spec = _with_overrides(
        spec,
        model={
            "width": width,
            "depth": depth,
            "parametrization": parametrization,
            "seq_len": seq_len,
        },
        train={"lr": lr, "steps": steps, "batch_size": batch_size, "threads": threads},
        data={"source": data},
        seed=seed,
    )
    from umup_sweep.train import run_trial  # torch loads only once the input is valid

    result = run_trial(spec)
    if curve is not None:
        from umup_sweep.store import write_curve  # the run directory's curve format

        curve.parent.mkdir(parents=True, exist_ok=True)
        write_curve(curve, result.curve)
    _print_result(spec, result, as_json)


def _print_result(spec: TrialSpec, result: TrialResult, as_json: bool) -> None:
    """The trial's result as JSON, or as a few aligned lines."""
    if as_json:
        payload = result.to_dict()
        payload.pop("curve")
        payload["spec"] = spec.to_dict()
        typer.echo(json.dumps(payload, indent=2))
        return
    m = spec.model
    typer.echo(
        f"{m.parametrization} width={m.width} depth={m.depth} params={result.n_params:,} "
        f"lr={spec.train.lr:g} seed={spec.seed} steps={result.steps}"
    )
    typer.echo(f"status           {result.status}")
    if result.final_train_loss is not None:
        typer.echo(f"final_train_loss {result.final_train_loss:.4f}")
    if result.val_loss is not None:
        typer.echo(f"val_loss         {result.val_loss:.4f}")
    typer.echo(f"wall_s           {result.wall_s:.1f}  ({result.tokens_per_s:,.0f} tokens/s)")
    typer.echo(f"trial_key        {result.trial_key}")


def register(app: typer.Typer) -> None:
    """Add `train` to the CLI."""
    app.command("train")(train)
