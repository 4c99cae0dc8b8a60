"""The divergence limit fits the vocabulary: a 32000-token proxy starts near ln(32000) = 10.37
nats, above the default limit of 10, so the default rises to ln(vocab) + 2 there, and a limit
the user gives at or below the uniform guess is a one-line error."""

from __future__ import annotations

import math

import pytest

from umup_sweep.config import load_sweep
from umup_sweep.errors import ConfigError


def sweep(vocab: int, **extra) -> dict:
    proxy = {"base": {"head_dim": 16, "vocab_size": vocab}, "widths": [32], "depths": [1]}
    return {"name": "v", "proxy": proxy, "hyperparameters": {"lr": [1]}} | extra


def test_default_limit_rises_above_the_uniform_guess_of_a_big_vocabulary() -> None:
    assert load_sweep(sweep(32000)).train.diverge_loss == round(math.log(32000) + 2, 2)
    # byte-level and small vocabularies keep 10 (and so every existing trial key)
    assert load_sweep(sweep(256)).train.diverge_loss == 10.0
    assert load_sweep(sweep(2048)).train.diverge_loss == 10.0


def test_a_given_limit_below_the_uniform_guess_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep(32000, train={"diverge_loss": 10}))
    assert str(err.value) == (
        "<inline>: train.diverge_loss: expected more than ln(vocab_size 32000) = 10.37, the "
        "loss of a uniform guess: every trial would start diverged, got 10.0 (float)"
    )
    with pytest.raises(ConfigError, match=r"^<inline>: divergence\.max_loss: expected more"):
        load_sweep(sweep(256, divergence={"max_loss": 5}))
    assert load_sweep(sweep(32000, divergence={"max_loss": 11})).train.diverge_loss == 11
