"""The text CNN of Kim (2014): embedding -> parallel 1-D convolutions -> max-over-time -> linear."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from textcnn.config import ModelConfig
from textcnn.text import PAD_ID


class TextCNN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 2:
            raise ValueError(f"vocab_size must be set (>= 2) before building a model, got {config.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embed_dim, config.num_filters, k) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.num_filters * len(config.kernel_sizes), config.num_classes)

    @property
    def min_length(self) -> int:
        """The shortest input every convolution can cover."""
        return max(self.config.kernel_sizes)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)                   # (B, E, L)
        pooled = [F.relu(conv(x)).amax(dim=2) for conv in self.convs]  # k x (B, F)
        return torch.cat(pooled, dim=1)                           # (B, k*F)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (B, L) int, L >= min_length; returns logits (B, C)
        return self.head(self.dropout(self.features(ids)))
