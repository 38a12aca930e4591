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
        self.min_length: int = max(config.kernel_sizes)   # the shortest input every convolution covers
        self.pad_id: int = PAD_ID                          # an attribute, so TorchScript can read it

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        # Windows that run past a row's last token are masked out of the max-pool, so a row's score
        # does not depend on how far the rest of its batch is padded. A row shorter than a kernel
        # keeps its first window (token + pads), the same whatever the batch.
        lengths = (ids != self.pad_id).sum(dim=1, keepdim=True)        # (B, 1)
        x = self.embedding(ids).transpose(1, 2).contiguous()      # (B, E, L); contiguous: ~30% faster convs
        pooled: list[torch.Tensor] = []
        for conv in self.convs:
            h = F.relu(conv(x))                                   # (B, F, L-k+1)
            starts = torch.arange(h.shape[2], device=ids.device)  # (L-k+1,)
            valid = starts < (lengths - conv.kernel_size[0] + 1).clamp(min=1)  # (B, L-k+1)
            pooled.append(h.masked_fill(~valid.unsqueeze(1), 0.0).amax(dim=2))  # (B, F); h >= 0
        return torch.cat(pooled, dim=1)                           # (B, k*F)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (B, L) int, L >= min_length; returns logits (B, C)
        return self.head(self.dropout(self.features(ids)))
