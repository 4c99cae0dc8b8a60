"""The trial YAML of `umup-sweep train`: `model:`, `train:`, `data:`, `seed:` → `TrialSpec`.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "trial.yaml"
    >>> _ = path.write_text("model: {width: 32, depth: 1}\\ntrain: {steps: 5}\\nseed: 3\\n")
    >>> spec = load_trial(path)
    >>> spec.model.width, spec.train.steps, spec.seed
    (32, 5, 3)
"""

from __future__ import annotations

from pathlib import Path

from umup_sweep.config._data import data_section
from umup_sweep.config._sections import vocab_diverge_loss
from umup_sweep.config._validate import build_section
from umup_sweep.config._yaml import read_yaml
from umup_sweep.errors import ConfigError
from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec

__all__ = ["TRIAL_YAML_KEYS", "load_trial"]

TRIAL_YAML_KEYS = ("model", "train", "data", "seed")


def load_trial(path: str | Path) -> TrialSpec:
    """Read a trial YAML (`model:`, `train:`, `data:`, `seed:`) into a validated TrialSpec.

    Every section is optional (an empty file is the default trial); `train:` takes lr and
    weight_decay directly, as a single trial has no sweep defaults.
    """
    source = str(path)
    doc = read_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(source, "", f"expected a mapping with keys {list(TRIAL_YAML_KEYS)}")
    for key in doc:
        if key not in TRIAL_YAML_KEYS:
            raise ConfigError(
                source, str(key), f"unknown key (valid: {', '.join(TRIAL_YAML_KEYS)})"
            )
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(source, "seed", f"expected an integer, got {seed!r}")
    model = build_section(ModelSpec, doc.get("model"), source, "model")
    train = build_section(TrainSpec, doc.get("train"), source, "train")
    given = "train.diverge_loss" if "diverge_loss" in (doc.get("train") or {}) else None
    return TrialSpec(
        model=model,
        train=vocab_diverge_loss(train, model.vocab_size, given, source),
        data=data_section(doc.get("data"), source, model.vocab_size),
        seed=seed,
    )
