"""The text CNN of Kim (2014): embedding -> parallel 1-D convolutions -> max-over-time -> linear,
plus (ngram_buckets > 0) a linear branch over hashed unigrams and bigrams, fastText-style, whose
logits are added to the CNN's. On small sets a linear n-gram model is hard to beat (TF-IDF + LR
tops fastText on the shared sets: docs/accuracy.md); the branch gives the CNN that model's strength at the cost of one
(buckets, classes) table, and both train together, the branch starting from naive Bayes weights or,
on small sets, from the logistic regression over its features (textcnn.training.ngram_start). With
ngram_idf, each n-gram counts in proportion to its IDF over the training rows (a (buckets,) buffer,
set from the training rows' n-gram counts), as TF-IDF weighs it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from textcnn.config import ModelConfig
from textcnn.core.text import PAD_ID


class TextCNN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 2:
            raise ValueError(f"vocab_size must be set (>= 2) before building a model, got {config.vocab_size}")
        if not config.kernel_sizes:
            raise ValueError("kernel_sizes must be resolved before building a model (empty: from the corpus)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embed_dim, config.num_filters, k) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.num_filters * len(config.kernel_sizes), config.num_classes)
        self.min_length: int = max(config.kernel_sizes)   # the shortest input every convolution covers
        self.pad_id: int = PAD_ID                          # an attribute, so TorchScript can read it
        self.buckets: int = config.buckets
        self.vocab_size: int = config.vocab_size
        self.ngrams = nn.Embedding(max(1, self.buckets), config.num_classes)
        nn.init.zeros_(self.ngrams.weight)    # the plain CNN, until training sets the branch's start
        self.use_idf: bool = bool(config.ngram_idf) and self.buckets > 0
        # saved only when used, so that models without IDF keep their state_dict
        self.register_buffer("ngram_idf", torch.ones(max(1, self.buckets)), persistent=self.use_idf)

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

    def ngram_keys(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per position, the buckets (B, L) of the unigram and of the bigram starting there, and
        whether each is a real n-gram (B, L) bool."""
        nxt = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], self.pad_id)], dim=1)     # (B, L)
        # bigram (a, b) -> a bucket: multiplicative hashing of a*V+b; < 2**63, so no int64 overflow
        pair = (ids * self.vocab_size + nxt) % 4294967296
        bigram = ((pair * 1540483477) >> 16) % self.buckets
        return ids % self.buckets, bigram, ids != self.pad_id, nxt != self.pad_id

    def ngram_weights(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per position, the buckets (B, L) of the unigram and of the bigram starting there, and the
        weight (B, L, 1) each counts with: 1 (or its IDF) for a real n-gram, 0 for padding, a row's
        weights scaled to unit L2 norm, as TF-IDF rows are."""
        unigram, bigram, is_uni, is_bi = self.ngram_keys(ids)
        uni_w, bi_w = is_uni.unsqueeze(2).float(), is_bi.unsqueeze(2).float()              # (B, L, 1)
        if self.use_idf:
            uni_w, bi_w = uni_w * self.ngram_idf[unigram].unsqueeze(2), bi_w * self.ngram_idf[bigram].unsqueeze(2)
        # IDF >= 1, so a row with any n-gram has a squared norm >= 1; the clamp only spares empty rows
        norm2 = (uni_w * uni_w).sum(dim=1, keepdim=True) + (bi_w * bi_w).sum(dim=1, keepdim=True)   # (B, 1, 1)
        scale = norm2.clamp(min=1.0).rsqrt()
        return unigram, bigram, uni_w * scale, bi_w * scale

    def ngram_terms(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per position, the n-gram branch's logits (B, L, C) of the unigram and of the bigram
        starting there (ngram_weights' weight times the bucket's row); they sum to the branch's logits."""
        unigram, bigram, uni_w, bi_w = self.ngram_weights(ids)
        return self.ngrams(unigram) * uni_w, self.ngrams(bigram) * bi_w

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (B, L) int, L >= min_length; returns logits (B, C)
        logits = self.head(self.dropout(self.features(ids)))
        if self.buckets > 0:
            unigrams, bigrams = self.ngram_terms(ids)                  # (B, L, C) each
            logits = logits + unigrams.sum(dim=1) + bigrams.sum(dim=1)
        return logits
