"""Inference shared by training, scoring, export and evaluation: the head's probabilities, bf16
autocast, chunked probabilities of token ids, and the runner of an exported (TorchScript or ONNX)
model, which artifacts.load puts where a TextCNN would be."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

from textcnn.core.text import PAD_ID, trim
from textcnn.errors import TextcnnError

FORMATS = ("torchscript", "onnx")


class ExportError(TextcnnError, RuntimeError):
    """The exported model cannot be written, read, or disagrees with the PyTorch model."""


def head_probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """(B, C) probabilities of logits, in fp32: a sigmoid per class (multi-label) or a softmax.
    Validation during training and scoring both read them from here."""
    logits = logits.float()
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=1)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked for ("auto": on GPU only); fp32 otherwise."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def probabilities(model: Any, ids: np.ndarray, num_classes: int, device: torch.device,
                  chunk: int = 128, multi_label: bool = False, precision: str = "fp32") -> np.ndarray:
    """Class probabilities (B, C) of token ids (B, L) under model (a TextCNN or an exported one):
    softmax, or a sigmoid per class for a multi-label model; bf16 autocast as precision says
    ("auto": on GPU only), the probabilities themselves always in fp32.

    The model's cost grows with the padded width, so rows are sorted by length and run in chunks
    trimmed to their own longest row. Masked pooling makes each row's score independent of the
    chunk it lands in, so the result is the same as one full-width batch.
    """
    out = np.empty((len(ids), num_classes), dtype=np.float32)
    order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
    with torch.inference_mode(), autocast(device, precision):
        for rows in np.array_split(order, max(1, -(-len(ids) // chunk))):
            x = torch.from_numpy(trim(ids[rows], model.min_length)).long().to(device)
            out[rows] = head_probabilities(model(x), multi_label).cpu().numpy()       # (b, C)
    return out


def require_onnxruntime() -> Any:
    """onnxruntime, or an ExportError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("ONNX needs onnxruntime and onnx: pip install 'textcnn[export]'") from None
    return onnxruntime


class ExportedModel:
    """A TorchScript or ONNX model behind the TextCNN call: ids (B, L) tensor -> logits (B, C) tensor."""

    def __init__(self, fmt: str, data: bytes, min_length: int, device: torch.device) -> None:
        self.format, self.min_length, self.device = fmt, min_length, device
        if fmt == "torchscript":
            self.module = torch.jit.load(io.BytesIO(data), map_location=device).eval()
        elif fmt == "onnx":
            providers = ["CUDAExecutionProvider"] if device.type == "cuda" else []
            self.session = require_onnxruntime().InferenceSession(data, providers=providers + ["CPUExecutionProvider"])
        else:
            raise ExportError(f"unknown model format {fmt!r}; expected one of {FORMATS}")

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if self.format == "torchscript":
            return self.module(ids)
        logits = self.session.run(None, {"ids": ids.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(logits).to(self.device)
