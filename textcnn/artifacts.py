"""The model directory: weights + config + vocabulary + labels + metrics, never a pickled module.

    <dir>/weights.pt    state_dict, loadable with torch.load(weights_only=True)
    <dir>/config.json   model and training config, the weights' sha256 and the vocabulary hash
    <dir>/vocab.json    the tokenizer (rules and tokens)
    <dir>/labels.json   class names in the order of the model's outputs
    (multi-label models: config.json also holds each class's threshold, tuned on validation)
    <dir>/metrics.json  validation metrics of the exported epoch

`textcnn export` writes the same directory with the model as TorchScript or ONNX instead of
weights.pt (config.json names the file and its format); `load` runs either the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import torch
from pyarrow.fs import FileSystem

from textcnn import storage
from textcnn.config import ModelConfig, model_config_from_dict
from textcnn.model import TextCNN
from textcnn.text import Tokenizer

log = logging.getLogger(__name__)

FILES = ("weights.pt", "config.json", "vocab.json", "labels.json", "metrics.json")
PYTORCH = "pytorch"


class ModelDirError(RuntimeError):
    """A model directory is missing a file or its weights do not match their recorded hash."""


@dataclass
class LoadedModel:
    model: TextCNN            # or an ExportedModel: called the same way, ids (B, L) -> logits (B, C)
    tokenizer: Tokenizer
    labels: list[str]
    config: dict[str, Any]
    version: str          # sha256 of weights.pt, 16 hex digits
    vocab_hash: str

    @property
    def multi_label(self) -> bool:
        return bool(self.config["model"].get("multi_label", False))

    @property
    def thresholds(self) -> list[float] | None:
        """Per-class decision thresholds of a multi-label model; None for single-label."""
        return self.config.get("thresholds")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _weights_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    return buf.getvalue()


def save(uri: str, state_dict: dict[str, torch.Tensor], model_config: ModelConfig,
         tokenizer: Tokenizer, labels: list[str], metrics: dict[str, Any],
         train_config: dict[str, Any] | None = None, thresholds: list[float] | None = None) -> str:
    """Write a complete model directory; returns the model version (hash of the weights)."""
    weights = _weights_bytes(state_dict)
    version = hashlib.sha256(weights).hexdigest()[:16]
    config = {
        "model": {**model_config.__dict__, "kernel_sizes": list(model_config.kernel_sizes)},
        "train": train_config,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "model_version": version,
        "vocab_hash": tokenizer.hash(),
    }
    if model_config.multi_label:
        config["thresholds"] = [float(t) for t in thresholds] if thresholds else [0.5] * len(labels)
    storage.write_bytes(storage.join(uri, "weights.pt"), weights)
    storage.write_text(storage.join(uri, "vocab.json"), _dumps(tokenizer.to_dict()))
    storage.write_text(storage.join(uri, "labels.json"), _dumps(list(labels)))
    storage.write_text(storage.join(uri, "metrics.json"), _dumps(metrics))
    storage.write_text(storage.join(uri, "config.json"), _dumps(config))  # last: marks it complete
    log.info("model %s written to %s", version, uri)
    return version


def _read_checked(uri: str, fs: FileSystem | None = None) -> tuple[dict[str, Any], bytes]:
    """config.json and weights.pt, once each, after checking the directory is complete and sound."""
    config_uri = storage.join(uri, "config.json")
    config = json.loads(storage.read_text(config_uri, fs)) if storage.exists(config_uri, fs) else {}
    weights_file = config.get("weights_file", "weights.pt")
    files = (weights_file,) + FILES[1:]
    missing = [f for f in files if not storage.exists(storage.join(uri, f), fs)]
    if len(missing) == len(files):
        raise ModelDirError(f"{uri}: {storage.missing_reason(uri, fs) or 'holds none of ' + ', '.join(files)}")
    if missing:
        raise ModelDirError("; ".join(f"{storage.join(uri, f)}: missing" for f in missing))
    weights = storage.read_bytes(storage.join(uri, weights_file), fs)
    digest = hashlib.sha256(weights).hexdigest()
    if digest != config.get("weights_sha256"):
        raise ModelDirError(f"{storage.join(uri, weights_file)}: sha256 {digest[:16]} does not "
                            f"match config.json's {str(config.get('weights_sha256'))[:16]}")
    return config, weights


def verify(uri: str, fs: FileSystem | None = None) -> list[str]:
    """Every problem with a model directory, as messages naming the file; empty when sound."""
    try:
        _read_checked(uri, fs)
    except ModelDirError as e:
        return str(e).split("; ")
    return []


def load(uri: str, device: str | torch.device = "cpu", fs: FileSystem | None = None) -> LoadedModel:
    """Load and check a model directory; the model is in eval mode on device.

    fs, when given, is the filesystem resolved on the driver (how actors on other nodes reach S3).
    """
    try:
        config, weights = _read_checked(uri, fs)
    except ModelDirError as e:
        raise ModelDirError(f"model directory {uri} is not usable: {e}") from None
    tokenizer = Tokenizer.from_dict(json.loads(storage.read_text(storage.join(uri, "vocab.json"), fs)))
    labels = json.loads(storage.read_text(storage.join(uri, "labels.json"), fs))
    fmt = config.get("format", PYTORCH)
    if fmt == PYTORCH:
        state = torch.load(io.BytesIO(weights), map_location=device, weights_only=True)
        model = TextCNN(model_config_from_dict(config["model"]))
        state.setdefault("ngrams.weight", model.ngrams.weight.detach())   # saved before the n-gram branch
        model.load_state_dict(state)
        model.to(device).eval()
    else:
        from textcnn.export import ExportedModel
        model = ExportedModel(fmt, weights, max(config["model"]["kernel_sizes"]), torch.device(device))
    return LoadedModel(model, tokenizer, labels, config, config["model_version"], config["vocab_hash"])
