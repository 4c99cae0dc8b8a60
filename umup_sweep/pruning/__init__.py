"""Stopping hopeless trials early without biasing the answer (a sweep's `pruning:` section).

Opt-in. A running trial stops only when it is *dominated*: at a checkpoint, its loss is behind
the best stored trial of the same proxy by more than any stored trial of that proxy has been
seen to catch up from there to the end, times a safety factor (`_rule` has the derivation).
Diverging trials already stop on their own (`train.diverge_loss`, non-finite losses). A
pruned trial is stored with status "pruned" and its partial curve; the analysis never takes
it as an optimum, and a rerun keeps it pruned unless asked (`umup-sweep run --rerun-pruned`).

- `Pruner`: the references per proxy and the `PruneBound` each new trial runs under.
- `prune_bound`, `catch_up`, `window_means`, `checkpoint_every`: the rule itself.
"""

from umup_sweep.pruning._references import Pruner, proxy_key
from umup_sweep.pruning._rule import (
    Reference,
    catch_up,
    checkpoint_every,
    prune_bound,
    window_means,
)

__all__ = [
    "Pruner",
    "Reference",
    "catch_up",
    "checkpoint_every",
    "proxy_key",
    "prune_bound",
    "window_means",
]
