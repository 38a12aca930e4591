"""Export a model directory as TorchScript or ONNX, checked for parity before it is written.

The exported directory is a model directory like any other (artifacts.py): the same vocab.json,
labels.json and metrics.json, and a config.json that names the model file, its format and sha256,
and the parity measured against the PyTorch model it came from. The exported model maps token ids
(B, L) int64 to logits (B, C); batch and length are dynamic. `artifacts.load` runs it through
ExportedModel, so `textcnn score` takes an exported directory as it takes the original.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from typing import Any

import numpy as np
import torch

from textcnn import storage
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.predict import FORMATS, ExportedModel, ExportError, probabilities, require_onnxruntime
from textcnn.core.text import PAD_ID

log = logging.getLogger(__name__)

MODEL_FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
PARITY_ROWS = 512
ONNX_OPSET = 17


def _serialize(model: TextCNN, fmt: str) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # both exporters warn that they are legacy paths
        if fmt == "torchscript":
            torch.jit.save(torch.jit.script(model), buf)
        else:
            require_onnxruntime()
            example = torch.ones((2, model.min_length + 3), dtype=torch.long)
            torch.onnx.export(model, (example,), buf, input_names=["ids"], output_names=["logits"],
                              dynamic_axes={"ids": {0: "batch", 1: "length"}, "logits": {0: "batch"}},
                              opset_version=ONNX_OPSET, dynamo=False)
    return buf.getvalue()


def parity_sample(vocab_size: int, max_length: int, rows: int = PARITY_ROWS, seed: int = 0) -> np.ndarray:
    """(rows, max_length) token ids of every length from 1 to max_length, right-padded."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab_size, size=(rows, max_length), dtype=np.int64)
    lengths = np.resize(np.arange(1, max_length + 1), rows)
    ids[np.arange(max_length)[None, :] >= lengths[:, None]] = PAD_ID
    return ids


def export(model_uri: str, fmt: str, output_uri: str, tolerance: float = 1e-4) -> dict[str, Any]:
    """Write model_uri as fmt to output_uri once its probabilities match PyTorch's within tolerance."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if storage.overlaps(model_uri, output_uri):
        raise ExportError(f"--output {output_uri} is, or lies inside, the model directory {model_uri} (or holds "
                          "it): the export would replace the PyTorch model's config.json; choose another directory")
    loaded = artifacts.load(model_uri)
    data = _serialize(loaded.model, fmt)
    exported = ExportedModel(fmt, data, loaded.model.min_length, torch.device("cpu"))
    ids = parity_sample(len(loaded.tokenizer), loaded.tokenizer.config.max_length)
    n, cpu, multi = len(loaded.labels), torch.device("cpu"), loaded.multi_label
    diff = float(np.abs(probabilities(exported, ids, n, cpu, multi_label=multi)
                        - probabilities(loaded.model, ids, n, cpu, multi_label=multi)).max())
    parity = {"rows": len(ids), "max_abs_prob_diff": diff, "tolerance": tolerance}
    if not diff <= tolerance:
        raise ExportError(f"{fmt} export of {model_uri} differs from PyTorch by {diff:.2e} > {tolerance:g} "
                          f"in probability on {len(ids)} rows; nothing written")
    _write(model_uri, output_uri, fmt, data, loaded, parity)
    log.info("%s model written to %s (parity %.2e on %d rows)", fmt, output_uri, diff, len(ids))
    return parity


def _write(model_uri: str, output_uri: str, fmt: str, data: bytes, loaded: artifacts.LoadedModel,
           parity: dict) -> None:
    contents = {name: storage.read_bytes(storage.join(model_uri, name))
                for name in ("vocab.json", "labels.json", "metrics.json")}
    contents[MODEL_FILES[fmt]] = data
    for name, content in contents.items():
        storage.write_bytes(storage.join(output_uri, name), content)
    digest = hashlib.sha256(data).hexdigest()
    config = {**loaded.config, "format": fmt, "weights_file": MODEL_FILES[fmt], "weights_sha256": digest,
              "files_sha256": {name: hashlib.sha256(c).hexdigest() for name, c in contents.items()},
              "model_version": digest[:16], "source_model_version": loaded.version, "parity": parity}
    storage.write_text(storage.join(output_uri, "config.json"),   # last: marks the directory complete
                       json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
