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

import dataclasses
import hashlib
import io
import json
import logging
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyarrow.fs import FileSystem

from textcnn import storage
from textcnn.config import ConfigError, ModelConfig, model_config_from_dict
from textcnn.core.model import TextCNN
from textcnn.core.predict import ExportedModel, probabilities
from textcnn.core.quantize import int8
from textcnn.core.text import Tokenizer
from textcnn.errors import TextcnnError

log = logging.getLogger(__name__)

FILES = ("weights.pt", "config.json", "vocab.json", "labels.json", "metrics.json")
PYTORCH = "pytorch"


class ModelDirError(TextcnnError, RuntimeError):
    """A model directory is missing a file or its weights do not match their recorded hash."""


@dataclass
class LoadedModel:
    model: TextCNN            # or an ExportedModel: called the same way, ids (B, L) -> logits (B, C)
    tokenizer: Tokenizer
    labels: list[str]
    config: dict[str, Any]
    version: str          # sha256 of weights.pt, 16 hex digits
    vocab_hash: str
    device: torch.device = torch.device("cpu")
    precision: str = "auto"   # as in scoring: auto (bf16 on GPU), fp32, bf16, int8 (quantized, CPU)

    @property
    def multi_label(self) -> bool:
        return bool(self.config["model"].get("multi_label", False))

    @property
    def thresholds(self) -> list[float] | None:
        """Per-class decision thresholds of a multi-label model; None for single-label."""
        return self.config.get("thresholds")

    def probabilities(self, ids: np.ndarray, chunk: int = 0) -> np.ndarray:
        """Class probabilities (B, C) of token ids (B, L) at the model's precision on its device."""
        chunk = chunk or (4096 if self.device.type == "cuda" else 128)   # a GPU needs big chunks to stay busy
        return probabilities(self.model, ids, len(self.labels), self.device, chunk, self.multi_label,
                             self.precision)


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
    contents = {"weights.pt": weights, "vocab.json": _dumps(tokenizer.to_dict()).encode(),
                "labels.json": _dumps(list(labels)).encode(), "metrics.json": _dumps(metrics).encode()}
    config = {
        "model": {**model_config.__dict__, "kernel_sizes": list(model_config.kernel_sizes)},
        "train": train_config,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "model_version": version,
        "vocab_hash": tokenizer.hash(),
        "files_sha256": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
    }
    if model_config.multi_label:
        config["thresholds"] = [float(t) for t in thresholds] if thresholds else [0.5] * len(labels)
    for name, data in contents.items():
        storage.write_bytes(storage.join(uri, name), data)
    storage.write_text(storage.join(uri, "config.json"), _dumps(config))  # last: marks it complete
    log.info("model %s written to %s", version, uri)
    return version


MODEL_FILES = ("weights.pt", "model.torchscript.pt", "model.onnx")   # what config.json may name as the model


def _parse_json(uri: str, raw: bytes, kind: type) -> Any:
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ModelDirError(f"{uri}: not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise ModelDirError(f"{uri}: expected a JSON {kind.__name__}, found {type(value).__name__}")
    return value


def _read_files(uri: str, fs: FileSystem | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """config.json (parsed) and the bytes of every other file of the model, after checking that the
    directory is complete; config.json names the model file, which must lie inside the directory."""
    config_uri = storage.join(uri, "config.json")
    config = _parse_json(config_uri, storage.read_bytes(config_uri, fs), dict) if storage.exists(config_uri, fs) else {}
    weights_file = config.get("weights_file", "weights.pt")
    if weights_file not in MODEL_FILES:
        raise ModelDirError(f"{config_uri}: field weights_file is {weights_file!r}; a model directory's model "
                            f"file is one of {', '.join(MODEL_FILES)}, in the directory itself")
    files = (weights_file,) + FILES[1:]
    missing = [f for f in files if not storage.exists(storage.join(uri, f), fs)]
    if len(missing) == len(files):
        raise ModelDirError(f"{uri}: {storage.missing_reason(uri, fs) or 'holds none of ' + ', '.join(files)}")
    if missing:
        raise ModelDirError("; ".join(f"{storage.join(uri, f)}: missing" for f in missing))
    return config, {f: storage.read_bytes(storage.join(uri, f), fs) for f in files if f != "config.json"}


def _recorded_hashes(config: dict[str, Any], weights_file: str) -> dict[str, str]:
    """{file: sha256} config.json records. Directories written before files_sha256 existed record the
    weights' hash only (their vocabulary is checked against vocab_hash instead)."""
    recorded = config.get("files_sha256")
    if recorded is None:
        return {weights_file: config.get("weights_sha256")}
    if not isinstance(recorded, dict):
        raise ModelDirError(f"config.json: field files_sha256 is {type(recorded).__name__}, not an object")
    return recorded


def _read_checked(uri: str, fs: FileSystem | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """config.json and every other file of the model, read once each, each checked against the
    sha256 config.json records for it: an edited vocabulary or a reordered labels.json is refused
    like tampered weights."""
    config, contents = _read_files(uri, fs)
    weights_file = config.get("weights_file", "weights.pt")
    recorded = _recorded_hashes(config, weights_file)
    problems = []
    for name, data in contents.items():
        if name not in recorded and name != weights_file:
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != recorded.get(name):
            problems.append(f"{storage.join(uri, name)}: sha256 {digest[:16]} does not match config.json's "
                            f"{str(recorded.get(name))[:16]} (edited after the model was written)")
    if problems:
        raise ModelDirError("; ".join(problems))
    return config, contents


def verify(uri: str, fs: FileSystem | None = None) -> list[str]:
    """Every problem with a model directory, as messages naming the file; empty when sound."""
    try:
        _read_checked(uri, fs)
    except ModelDirError as e:
        return str(e).split("; ")
    return []


def _of_type(value: Any, default: Any) -> bool:
    """Whether a config.json value has the type of the field's default (ints are floats too; the one
    field defaulting to None, ngram_idf, is a flag)."""
    if default is None:
        return value is None or isinstance(value, bool)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, tuple):
        return isinstance(value, list) and all(_of_type(v, 0) for v in value)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _model_config(uri: str, config: dict[str, Any]) -> ModelConfig:
    """config.json's "model" as a ModelConfig; a field of the wrong type or range is named."""
    where = storage.join(uri, "config.json")
    section = config.get("model")
    if not isinstance(section, dict):
        raise ModelDirError(f"{where}: field model is {type(section).__name__}, not an object")
    for f in dataclasses.fields(ModelConfig):
        if f.name in section and not _of_type(section[f.name], f.default):
            raise ModelDirError(f"{where}: field model.{f.name} is {section[f.name]!r}, "
                                f"not of the type of {f.default!r}")
    try:
        return model_config_from_dict(section)
    except (ConfigError, TypeError) as e:
        raise ModelDirError(f"{where}: field model.{e}") from None


def _labels(uri: str, raw: bytes, num_outputs: int) -> list[str]:
    where = storage.join(uri, "labels.json")
    labels = _parse_json(where, raw, list)
    if not all(isinstance(x, str) and x for x in labels):
        raise ModelDirError(f"{where}: every label must be a non-empty string, found {labels[:10]!r}")
    if len(labels) != num_outputs:
        raise ModelDirError(f"{where}: {len(labels)} label(s) for a model of {num_outputs} outputs "
                            f"(config.json model.num_classes)")
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ModelDirError(f"{where}: label(s) named more than once: {repeated}")
    return labels


def _tokenizer(uri: str, raw: bytes, config: dict[str, Any]) -> Tokenizer:
    where = storage.join(uri, "vocab.json")
    try:
        tokenizer = Tokenizer.from_dict(_parse_json(where, raw, dict))
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise ModelDirError(f"{where}: not a vocabulary written by textcnn ({type(e).__name__}: {e})") from None
    if tokenizer.hash() != config.get("vocab_hash"):
        raise ModelDirError(f"{where}: its hash {tokenizer.hash()} does not match config.json's vocab_hash "
                            f"{config.get('vocab_hash')} (edited after the model was written)")
    return tokenizer


def _torch_model(uri: str, weights: bytes, model_config: ModelConfig, device: str | torch.device) -> TextCNN:
    where = storage.join(uri, "weights.pt")
    try:
        state = torch.load(io.BytesIO(weights), map_location=device, weights_only=True)
        model = TextCNN(model_config)
        state.setdefault("ngrams.weight", model.ngrams.weight.detach())   # saved before the n-gram branch
        model.load_state_dict(state)
    except pickle.UnpicklingError:
        raise ModelDirError(f"{where}: holds pickled objects other than tensors; refused, never run "
                            "(a model directory's weights load with weights_only=True)") from None
    except (RuntimeError, AttributeError, KeyError, TypeError, ValueError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelDirError(f"{where}: not a state_dict of this model's config ({first})") from None
    return model.to(device).eval()


def load(uri: str, device: str | torch.device = "cpu", fs: FileSystem | None = None,
         precision: str = "auto") -> LoadedModel:
    """Load and check a model directory; the model is in eval mode on device, quantized for
    precision "int8".

    fs, when given, is the filesystem resolved on the driver (how actors on other nodes reach S3).
    """
    try:
        config, contents = _read_checked(uri, fs)
        model_config = _model_config(uri, config)
        tokenizer = _tokenizer(uri, contents["vocab.json"], config)
        labels = _labels(uri, contents["labels.json"], model_config.num_classes)
        fmt = config.get("format", PYTORCH)
        weights = contents[config.get("weights_file", "weights.pt")]
        if fmt == PYTORCH:
            model = _torch_model(uri, weights, model_config, device)
        else:
            model = ExportedModel(fmt, weights, max(model_config.kernel_sizes), torch.device(device))
    except ModelDirError as e:
        raise ModelDirError(f"model directory {uri} is not usable: {e}") from None
    if precision == "int8":
        model = int8(model)
    return LoadedModel(model, tokenizer, labels, config, config["model_version"], config["vocab_hash"],
                       torch.device(device), precision)
