"""Read back what the trackers wrote, with each library's own reader or record format.

- W&B: an offline run is one transaction log, ``run-<id>.wandb``: LevelDB-log framing (32 KiB
  blocks of chunks, each with a 7-byte header) around W&B's own protobuf records, which
  `wandb.proto.wandb_internal_pb2.Record` parses. wandb ships no Python reader for it any
  more, so the framing is undone here (a dozen lines) and the records are wandb's.
- MLflow: `MlflowClient` on the store the tracker used.
- TensorBoard: `EventAccumulator` on each run's folder.

A plain module (not conftest) so the test files import it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32768  # the LevelDB log block size wandb writes
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """One offline W&B run as its transaction log records it."""

    id: str
    name: str
    group: str
    job_type: str
    project: str
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def metric(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of every history row that has `key`."""
        return [(int(row["_step"]), row[key]) for row in self.history if key in row]


def _chunks(data: bytes) -> list[bytes]:
    """The records of a LevelDB-framed log (after wandb's 7-byte file header)."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    out, pos, buf = [], 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        chunk, pos = data[pos : pos + length], pos + length
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            buf = chunk
        elif kind == _MIDDLE:
            buf += chunk
        elif kind == _LAST:
            out.append(buf + chunk)
            buf = b""
        elif kind == 0 and length == 0:
            break
    return out


def _items(items: Any) -> dict[str, Any]:
    """History/summary items (``nested_key`` or ``key``, JSON values) as a flat dict."""
    out = {}
    for item in items:
        key = "/".join(item.nested_key) if item.nested_key else item.key
        out[key] = json.loads(item.value_json)
    return out


def read_wandb_run(run_dir: Path) -> WandbRun:
    """Parse ``<run_dir>/run-<id>.wandb`` with wandb's protobuf records."""
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = run_dir.glob("run-*.wandb")
    run: WandbRun | None = None
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    files: list[str] = []
    for raw in _chunks(log.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            config = {u.key: json.loads(u.value_json) for u in r.config.update}
            config.pop("_wandb", None)
            run = WandbRun(r.run_id, r.display_name, r.run_group, r.job_type, r.project, config)
        elif kind == "history":
            history.append(_items(record.history.item))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
        elif kind == "files":
            files += [f.path for f in record.files.files]
    assert run is not None, f"{log}: no run record"
    run.history, run.summary, run.files = history, summary, files
    return run


def wandb_runs(tracking_dir: Path) -> list[WandbRun]:
    """Every offline run under a W&B tracker's `dir`."""
    return [read_wandb_run(d) for d in sorted((tracking_dir / "wandb").glob("offline-run-*"))]


def mlflow_runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    """(the client, every run of `experiment`) in the MLflow store at `uri`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of one TensorBoard run folder: (step, value) in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tensorboard_accumulator(run_dir: Path) -> Any:
    """The loaded `EventAccumulator` of one run folder (images, texts, plugins)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc
