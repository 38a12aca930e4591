"""What a training run was started with, kept beside its checkpoints, so that starting it again
under the same name resumes only a run that builds the same model.

Ray Train resumes any run whose folder holds its checkpoint snapshot; it knows nothing of the
vocabulary or the model's shape. A run started again after its data, tokenizer rules or model
settings changed (or after an upgrade that resolves them differently) would otherwise fail deep in
`load_state_dict` with a shape mismatch, or, worse, resume weights whose token ids mean other
tokens. The record turns that into one line naming what differs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from textcnn import storage
from textcnn.config import ConfigError, ModelConfig, to_dict
from textcnn.core.text import Tokenizer

log = logging.getLogger(__name__)

RECORD_FILE = "textcnn_run.json"
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"   # Ray Train V2 resumes a run that has it


def fingerprint(tokenizer: Tokenizer, labels: list[str], model_config: ModelConfig) -> dict[str, Any]:
    """What the checkpoints' weights depend on: token ids, label order, every model shape."""
    # as JSON gives it back (tuples become lists), so a record read from storage compares equal
    return json.loads(json.dumps({"vocabulary": tokenizer.hash(), "labels": list(labels),
                                  "model": to_dict(model_config)}))


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'field: before -> now' for each part of the fingerprint that changed."""
    out = []
    for key in ("vocabulary", "labels"):
        if before.get(key) != now[key]:
            out.append(f"{key}: {before.get(key)} -> {now[key]}")
    old_model = before.get("model", {})
    for field, value in now["model"].items():
        if old_model.get(field) != value:
            out.append(f"model.{field}: {old_model.get(field)} -> {value}")
    return out


def check_or_record(run_uri: str, now: dict[str, Any]) -> bool:
    """Refuse (ConfigError) to resume a run at run_uri that was started with another fingerprint;
    otherwise record this one. Returns whether Ray Train will resume an earlier attempt."""
    record_uri = storage.join(run_uri, RECORD_FILE)
    resuming = storage.exists(storage.join(run_uri, RAY_SNAPSHOT))
    if resuming and storage.exists(record_uri):
        changed = differences(json.loads(storage.read_text(record_uri)), now)
        if changed:
            raise ConfigError(
                f"run {run_uri} was started with a different model, so it cannot be resumed "
                f"({'; '.join(changed)}): start it with the settings and data it had, or use a new --run-name")
    if resuming:
        log.info("resuming run %s from its checkpoints", run_uri)
    storage.write_text(record_uri, json.dumps(now, indent=1, sort_keys=True))
    return resuming
