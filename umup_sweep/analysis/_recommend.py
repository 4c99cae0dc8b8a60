"""Recommend the target model's hyperparameters from a finished sweep (`recommended.yaml`).

The HP values start from the sweep's best config at its largest proxy (configs run with the
most seeds first — for independent sweeps that is the confirmed config); in a one-HP sweep the
swept HP starts from the joint fit's optimum at that proxy instead of the grid point, so its
value at the target is the joint fit's prediction there. Every swept HP then moves along its
fitted drift line to the target, with a ≈95% interval that adds the source proxy's error and
the drift's error times the number of doublings (`_interval.py`, `_carry.py`); when the
optimum only transfers from some width on (the analysis's width regime), the narrower widths
are left out of that line, with a warning. The target model comes from `_target_model.py`
(a target file, the sweep's `target:`, or `--width`/`--depth`); the effective per-parameter-
group learning rates come from the project's own optimizer applied to it on the meta device,
so they are exactly what training the target would use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from umup_sweep.analysis._analyze import TransferReport, analyze_run
from umup_sweep.analysis._carry import carry_to_target, drift_line
from umup_sweep.analysis._param_groups import param_groups
from umup_sweep.analysis._precision import PrecisionReport
from umup_sweep.analysis._proxy_axes import AXES, key_coords, proxy_columns
from umup_sweep.analysis._run import RunData, load_run, precision_rank
from umup_sweep.analysis._target_model import (
    ResolvedTarget,
    couple_weight_decay,
    plan_weight_decay,
    resolve_target,
    scope_warnings,
)
from umup_sweep.analysis._train_carry import (
    TRAIN_AXES,
    axes_record,
    axes_sentence,
    extrapolation_warnings,
    target_train_coords,
)
from umup_sweep.analysis._transfer import HPTransfer, result_key
from umup_sweep.errors import UserError
from umup_sweep.spec import HP_NAMES, MODEL_HPS, STOPPED, ModelSpec
from umup_sweep.store import RECOMMENDED_FILE

if TYPE_CHECKING:
    from umup_sweep.config import TargetSpec

# A carry along a train axis further than this many times the measured span is a warning.
MAX_SPAN_MULTIPLE = 2.0
TRAIN_KEYS_TO_CARRY = (
    "optimizer",
    "beta1",
    "beta2",
    "eps",
    "warmup_frac",
    "schedule",
    "final_lr_frac",
    "grad_clip",
)


@dataclass
class Recommendation:
    """What `recommend` decided; `to_dict()` is the `recommended.yaml` content."""

    run: str
    target: dict[str, Any]
    hyperparameters: dict[str, float]
    source: dict[str, Any]
    param_groups: list[dict[str, Any]]
    evidence: dict[str, Any]
    intervals: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    paste: str = ""
    exports: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the order a reader wants it."""
        return {
            "run": self.run,
            "warnings": self.warnings,
            "target": self.target,
            "hyperparameters": self.hyperparameters,
            "intervals": self.intervals,
            "source": self.source,
            "param_groups": self.param_groups,
            "evidence": self.evidence,
            "paste": self.paste,
            "exports": self.exports,
        }

    def write(self, path: str | Path) -> Path:
        """Write the YAML (the `paste` block as a literal block scalar)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            yaml.dump(
                self.to_dict(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
            )
        )
        return out


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as `|` blocks and never uses aliases (the
    intervals also appear in the evidence: each is written out in full, for people)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _list_presenter(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, int | float) for v in data)  # shapes and short number lists
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(str, _str_presenter)
_Dumper.add_representer(list, _list_presenter)


def best_config(trials: pd.DataFrame, metric: str) -> tuple[dict[str, float], dict[str, Any]]:
    """The best HP config at the largest proxy.

    Among configs (same HP values) run at the largest (width, depth) — with train axes also
    the longest horizon, then the largest batch — with no diverged seed, prefer the most
    seeds attempted (confirmed configs), then the lowest seed-mean metric.

    Returns:
        (HP values, where it came from: width, depth (with train axes: steps, batch and
        tokens), seeds, mean metric, stage).
    """
    cols = proxy_columns(trials)
    proxies = sorted({tuple(int(v) for v in row) for row in trials[cols].itertuples(index=False)})
    for proxy in reversed(proxies):
        sub = trials[(trials[cols] == list(proxy)).all(axis=1)]
        scored = []
        for values, g in sub.groupby(list(HP_NAMES), sort=False):
            ok = g[(g["status"] == "ok") & g[metric].notna()]
            if len(ok) == 0 or g["status"].isin(STOPPED).any():
                continue
            attempted = int((g["status"] != "failed").sum())
            scored.append((-attempted, float(ok[metric].mean()), values, g, len(ok)))
        if not scored:
            continue
        _, mean, values, g, n_ok = min(scored, key=lambda t: (t[0], t[1]))
        hps = {h: float(v) for h, v in zip(HP_NAMES, values, strict=True)}
        source: dict[str, Any] = key_coords(proxy)
        if len(proxy) > 2:
            source["steps"] = int(sub["train_steps"].iloc[0])
        source |= {
            "seeds": n_ok,
            metric: mean,
            "stage": sorted({str(s) for s in g["stage"]}),
        }
        return hps, source
    raise UserError("no successful trial in the run: nothing to recommend (all diverged/failed)")


def _paste_block(spec: ModelSpec, hps: dict[str, float], train: dict[str, Any]) -> str:
    """A trial-YAML snippet (`umup-sweep train` format) for the target."""
    model = dataclasses.asdict(spec)
    train_part = {"lr": hps["lr"], "weight_decay": hps["weight_decay"]}
    train_part |= {k: train[k] for k in TRAIN_KEYS_TO_CARRY if k in train}
    header = (
        "# u-μP target config recommended by umup-sweep; set steps/batch_size for your run.\n"
        "# Python: build_model(ModelSpec(**model)); make_optimizer(model, lr=train['lr'],\n"
        "#         weight_decay=train['weight_decay'])\n"
    )
    body = yaml.safe_dump({"model": model, "train": train_part}, sort_keys=False)
    return header + body


def _carry_value(
    hp: str,
    value: float,
    res: HPTransfer | None,
    src: dict[str, Any],
    target: dict[str, int],
    warnings: list[str],
    param: str,
    use_fit: bool = False,
) -> tuple[float, dict[str, Any]]:
    """The target's value of one HP and the evidence behind it, with its interval.

    The value starts at the source proxy and moves along the drift line (`_carry.py`). With
    `use_fit` (a one-HP sweep, where the analysed line *is* the best config's line) it starts
    at the joint fit's optimum there, so the value at the target is the joint fit's prediction
    (or, when the width regime leaves narrow widths out, the source proxy's own parabola
    optimum moved along the regime's drift); otherwise at the best config's value, a value
    that was run. Its error is the source proxy's optimum error.

    Example:
        >>> _carry_value("lr", 0.5, None, {}, {}, [], "umup")
        (0.5, {'proxy_value': 0.5, 'verdict': 'not analysed'})
    """
    ev: dict[str, Any] = {"proxy_value": value}
    if res is None:
        ev["verdict"] = "not analysed"
        return value, ev
    ev |= _transfer_evidence(res)
    src_opt = next((p for p in res.per_proxy if p.coords == _src_coords(src)), None)
    if src_opt is not None and src_opt.at_edge:
        warnings.append(
            f"{hp}: the best value at {src_opt.name} is at the edge of the "
            "swept range; the true optimum may lie beyond it: extend the grid"
        )
    ev["axes"] = axes_record(res, src, target)
    warnings += extrapolation_warnings(hp, ev["axes"], MAX_SPAN_MULTIPLE)
    if not res.drift or value <= 0:
        why = res.reason if not res.drift else f"its value is {value:g}, which no drift moves"
        warnings.append(f"{hp}: transfer not tested ({why}); using the proxy value as is")
        return value, ev
    line = drift_line(hp, res, ev, warnings)
    se = None if src_opt is None else (src_opt.fit_optimum_se or src_opt.seed_spread)
    if use_fit and src_opt is not None and src_opt.fit_method == "parabola":
        anchor = (
            src_opt.fit_optimum_log2
            if ev.get("regime", {}).get("used")
            else res.optimum_log2_at(**_src_coords(src))
        )
        if anchor is not None:
            ev["grid_value"] = value
            value = 2.0**anchor
            ev["proxy_value"] = value
            ev["proxy_value_from"] = (
                "the source proxy's parabola fit in log2 (width regime)"
                if ev.get("regime", {}).get("used")
                else "the joint fit's optimum at the source proxy"
            )
    if se is None:
        warnings.append(f"{hp}: no error for the optimum at the source proxy; interval too narrow")
    ci = carry_to_target(hp, value, se, line, src, target, param, ev, warnings)
    return ci.value, ev


def _transfer_evidence(res: HPTransfer) -> dict[str, Any]:
    """The transfer analysis of one HP, as `recommended.yaml` shows it."""
    return {
        "verdict": res.verdict,
        "reason": res.reason,
        "drift": {a: {"slope": d.slope, "se": d.se} for a, d in res.drift.items()},
        "fit_centre_log2": res.centre_log2,
        "fit_reference": dict(res.reference),
        "proxies": [p.name for p in res.per_proxy],
        "optima_log2": [p.fit_optimum_log2 for p in res.per_proxy],
        "tolerance": res.tolerance,
    }


def _precision_evidence(
    hp: str,
    value: float,
    param: str,
    reference: str,
    report: PrecisionReport,
    ev: dict[str, Any],
    warnings: list[str],
) -> list[str]:
    """Whether ``hp``'s optimum holds at each lower precision: adds `ev["precision"]`, a warning
    when it shifts or degrades, and returns one line per precision for the evidence."""
    lines = []
    for low in report.precisions:
        c = report.get(hp, param, low)
        if low == reference or c is None or c.reference != reference:
            continue
        worst_regret = max((p.regret for p in c.per_proxy if p.regret is not None), default=None)
        ev.setdefault("precision", {})[low] = {
            "verdict": c.verdict,
            "shift_log2": c.shift_log2,
            "shift_se": c.shift_se,
            "max_gap": c.max_gap,
            "max_gap_at_reference_optimum": c.max_gap_at_reference_optimum,
            "max_regret": worst_regret,
            "reason": c.reason,
        }
        lines.append(c.sentence())
        if c.verdict == "shifts" and c.shift_log2 is not None:
            cost = "" if worst_regret is None else f" (keeping {value:.4g} costs up to "
            cost += "" if worst_regret is None else f"{worst_regret:.4f} on the proxies)"
            warnings.append(
                f"{hp}: the optimum does NOT hold in {low}: it shifts by {c.shift_log2:+.2f} ± "
                f"{c.shift_se or 0:.2f} log2 from {reference}'s, to about "
                f"{value * 2.0**c.shift_log2:.4g}{cost}; re-tune {hp} if the target trains in {low}"
            )
        elif c.verdict == "degrades":
            gap = "" if c.max_gap is None else f" (loss gap up to {c.max_gap:+.3f} at the optimum)"
            warnings.append(
                f"{hp}: training degrades in {low} vs {reference}{gap}, beyond the "
                f"{c.loss_threshold:g} threshold: {c.reason}"
            )
    return lines


def recommend(
    run_dir: str | Path | RunData,
    width: int | None = None,
    depth: int | None = None,
    out: str | Path | None = None,
    tolerance: float | None = None,
    report: TransferReport | None = None,
    target: TargetSpec | None = None,
) -> Recommendation:
    """Recommend HPs, their intervals and per-group LRs for the target model.

    Args:
        run_dir: the run directory (`runs/<name>/`).
        width: target model width (d_model); with `target`, resizes it.
        depth: target model depth (blocks); with `target`, resizes it.
        out: where to write the YAML; default `<run_dir>/recommended.yaml`; None writes there too.
        tolerance: transfer tolerance override (log2 per doubling).
        report: an existing transfer analysis of the run (else computed).
        target: the target model and training plan (`umup_sweep.config.load_target`); default
            the sweep's `target:` section, else the base proxy at `width` × `depth`.

    Example:
        >>> rec = recommend("runs/lr_width", width=4096, depth=32)  # doctest: +SKIP
        >>> rec.evidence["hps"]["lr"]["interval"]["ci95"]  # doctest: +SKIP
        [0.41, 0.62]
    """
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    report = report or analyze_run(run, tolerance, write=False)
    param, precision, trials, warnings = _reference_trials(run)
    hps, src = best_config(trials, run.metric)
    src["precision"] = precision
    resolved = resolve_target(run, param, hps, width, depth, target)
    size = _target_size(run, report, param, precision, resolved, warnings)
    evidence: dict[str, Any] = {}
    checks: list[str] = []
    for hp in run.swept:
        res = report.results.get(hp, {}).get(result_key(param, precision))
        hps[hp], evidence[hp] = _carry_value(
            hp, hps[hp], res, src, size, warnings, param, use_fit=len(run.swept) == 1
        )
        if report.precision is not None:
            checks += _precision_evidence(
                hp, hps[hp], param, precision, report.precision, evidence[hp], warnings
            )
    warnings += couple_weight_decay(run, hps, evidence)
    wd_note = plan_weight_decay(resolved, hps, run.swept)
    warnings += [wd_note] if wd_note else []
    lr_res = report.results.get("lr", {}).get(result_key(param, precision))
    warnings += scope_warnings(
        run, report, param, resolved, warnings, _source_curvature(lr_res, src), src
    )
    spec = _with_hps(resolved.spec, hps)
    try:
        groups = param_groups(spec, hps["lr"], hps["weight_decay"])
    except ImportError as exc:
        groups = []
        warnings.append(f"per-group learning rates unavailable ({exc})")
    train = run.sweep.get("train") if isinstance(run.sweep.get("train"), dict) else {}
    rec = Recommendation(
        run=run.name,
        target=dataclasses.asdict(spec),
        hyperparameters=hps,
        source=src | {"target_from": resolved.origin},
        param_groups=groups,
        evidence={
            "metric": run.metric,
            "parametrization": param,
            "precision": precision,
            "precision_checks": checks,
            "hps": evidence,
            "axes": {h: axes_sentence(e["axes"]) for h, e in evidence.items() if "axes" in e},
        },
        intervals={h: e["interval"] for h, e in evidence.items() if "interval" in e},
        warnings=warnings,
        paste=_paste_block(spec, hps, train or {}),
        exports=_exports(spec, hps, train or {}, warnings),
    )
    rec.write(out if out is not None else run.path / RECOMMENDED_FILE)
    return rec


def _exports(
    spec: ModelSpec, hps: dict[str, float], train: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    """The target in other trainers' terms (`umup_sweep.exports`); u-μP targets only."""
    from umup_sweep.exports import (
        aleph_alpha_scaling_export,
        param_group_table,
        unit_scaling_export,
    )

    if spec.parametrization != "umup":
        return {}
    try:
        return {
            "param_group_table": param_group_table(spec, hps),
            "unit_scaling": unit_scaling_export(spec, hps, train),
            "aleph_alpha_scaling": aleph_alpha_scaling_export(spec, hps, train),
        }
    except ValueError as exc:
        warnings.append(f"exports unavailable: {exc}")
        return {}


def _with_hps(spec: ModelSpec, hps: dict[str, float]) -> ModelSpec:
    """The target with the recommended multipliers (after carrying them to the target)."""
    changes: dict[str, Any] = {h: hps[h] for h in MODEL_HPS}
    return dataclasses.replace(spec, **changes)


def _source_curvature(res: HPTransfer | None, src: dict[str, Any]) -> float | None:
    """The lr line's fitted curvature (loss per log2²) at the source proxy, if analysed."""
    if res is None or not res.curvature:
        return None
    for p, b in zip(res.per_proxy, res.curvature, strict=False):
        if p.coords == _src_coords(src):
            return float(b)
    return float(res.curvature[-1])


def _src_coords(src: dict[str, Any]) -> dict[str, int]:
    """The source proxy's coordinates (width, depth; tokens and batch on the train axes)."""
    return {a: int(src[a]) for a in AXES if a in src}


def _target_size(
    run: RunData,
    report: TransferReport,
    param: str,
    precision: str,
    resolved: ResolvedTarget,
    warnings: list[str],
) -> dict[str, int]:
    """The target's coordinates: width, depth, and its plan's tokens and batch size along the
    train axes some swept HP's drift was fitted on (a warning for each the plan lacks)."""
    size = {"width": resolved.spec.width, "depth": resolved.spec.depth}
    measured = set()
    for hp in run.swept:
        res = report.results.get(hp, {}).get(result_key(param, precision))
        measured |= set(res.drift) if res is not None else set()
    proxy_seq = run.base.seq_len if run.base is not None else resolved.spec.seq_len
    train_at, train_warnings = target_train_coords(
        resolved.plan, resolved.spec.seq_len, proxy_seq, measured & set(TRAIN_AXES)
    )
    warnings += train_warnings
    return size | train_at


def _reference_trials(run: RunData) -> tuple[str, str, pd.DataFrame, list[str]]:
    """The trials the HP values come from: the sweep's parametrization (else the first one
    present) at the highest precision present (the reference; lower ones are checked
    against it). Returns (parametrization, precision, trials, warnings)."""
    params = sorted(run.trials["parametrization"].unique())
    param = run.base.parametrization if run.base is not None else params[0]
    trials = run.trials[run.trials["parametrization"] == param]
    if trials.empty:
        param, trials = params[0], run.trials[run.trials["parametrization"] == params[0]]
    precision = min((str(p) for p in trials["precision"]), key=precision_rank)
    warnings = [f"the run holds {params}: recommending for {param}"] if len(params) > 1 else []
    return param, precision, trials[trials["precision"] == precision], warnings
