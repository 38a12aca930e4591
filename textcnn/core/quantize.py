"""int8 dynamic quantization of a TextCNN for CPU scoring.

PyTorch's dynamic quantization reaches nn.Linear only, and the convolutions are where a text CNN
spends its time, so each Conv1d is first rewritten as the Linear it is over unfolded windows (same
weights, same outputs in fp32); then every Linear gets int8 weights and per-batch int8 activations.
The n-gram branch is a table lookup and stays fp32. `jobs/bench.py` reports the accuracy change.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from textcnn.core.model import TextCNN


class WindowLinear(nn.Module):
    """A Conv1d (stride 1, no padding) computed as a Linear over its k-token windows."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        if conv.stride != (1,) or conv.padding != (0,) or conv.dilation != (1,) or conv.groups != 1:
            raise ValueError(f"only plain stride-1 convolutions can be rewritten, got {conv}")
        self.kernel_size = conv.kernel_size            # read by TextCNN.features for the mask
        self.linear = nn.Linear(conv.in_channels * conv.kernel_size[0], conv.out_channels)
        with torch.no_grad():
            # conv weight (F, E, k) -> (F, k*E), matching windows laid out token by token
            self.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1))
            self.linear.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, E, L) -> (B, F, L-k+1), as the convolution it replaces
        windows = x.transpose(1, 2).unfold(1, self.kernel_size[0], 1)      # (B, L-k+1, E, k)
        windows = windows.transpose(2, 3).flatten(2)                       # (B, L-k+1, k*E)
        return self.linear(windows).transpose(1, 2)


def int8(model: TextCNN) -> TextCNN:
    """A copy of model with int8 weights in its convolutions and head, for CPU inference."""
    if not isinstance(model, TextCNN):
        raise ValueError("int8 quantization needs the PyTorch model directory, not an export")
    rewritten = copy.deepcopy(model).cpu().eval()
    rewritten.convs = nn.ModuleList(WindowLinear(conv) for conv in rewritten.convs)
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, a further dependency; in torch
        # 2.13 it still works, and the unit test fails the day it stops.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(rewritten, {nn.Linear}, dtype=torch.qint8)
