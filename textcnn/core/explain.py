"""Which n-grams decided a score: read off the max-pool positions and the head's weights.

Each filter of width k keeps one window (its max-pool position), an n-gram of k tokens, and adds
w * value to every class logit. Against the other classes, a filter pushes the predicted class c by
(W[c, f] - mean of W[j != c, f]) * value. Summing that over the filters that kept the same window
gives each n-gram's contribution; together with the head's bias they add up to the predicted
logit's margin over the mean of the others, so the n-grams are the whole explanation, not a proxy.
The model's n-gram branch adds each unigram's and bigram's own margin term as windows of width 1
and 2, so the sum stays exact. Ray-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from textcnn.core.model import TextCNN
from textcnn.core.text import CJK_CHARS, PAD_ID

_CJK_CHAR = re.compile(rf"^[{CJK_CHARS}]$")


@dataclass(frozen=True)
class NGram:
    text: str
    start: int             # the first token's position in the row
    width: int
    contribution: float    # to the predicted class's margin, in logits

    def to_dict(self) -> dict:
        return {"ngram": self.text, "start": self.start, "width": self.width,
                "contribution": round(self.contribution, 6)}


def join_tokens(tokens: list[str], chars: bool = False) -> str:
    """Words with spaces between them, CJK characters next to each other without; tokens of the
    "chars" split (their spaces are tokens) as they are."""
    if chars:
        return "".join(tokens)
    out = ""
    for i, t in enumerate(tokens):
        if i and not (_CJK_CHAR.match(tokens[i - 1]) and _CJK_CHAR.match(t)):
            out += " "
        out += t
    return out


def _margin_weights(head: torch.nn.Linear, target: torch.Tensor) -> torch.Tensor:
    """(B, k*F): each feature's weight for the target class minus its mean weight for the others."""
    w = head.weight                                                # (C, k*F)
    own = w[target]                                                # (B, k*F)
    if w.shape[0] == 1:
        return own
    return own - (w.sum(dim=0, keepdim=True) - own) / (w.shape[0] - 1)


@torch.inference_mode()
def window_contributions(model: TextCNN, ids: torch.Tensor, target: torch.Tensor) -> list[np.ndarray]:
    """Per kernel width k: (B, L-k+1) contributions of the window starting at each position."""
    lengths = (ids != PAD_ID).sum(dim=1, keepdim=True)             # (B, 1)
    x = model.embedding(ids).transpose(1, 2).contiguous()          # (B, E, L)
    margin, offset, out = _margin_weights(model.head, target), 0, []
    for conv in model.convs:
        k = conv.kernel_size[0]
        h = F.relu(conv(x))                                        # (B, F, L-k+1)
        valid = torch.arange(h.shape[2], device=ids.device) < (lengths - k + 1).clamp(min=1)
        value, pos = h.masked_fill(~valid.unsqueeze(1), 0.0).max(dim=2)   # (B, F) each
        contrib = (value * margin[:, offset:offset + h.shape[1]]).cpu().numpy()   # (B, F)
        acc = np.zeros((ids.shape[0], h.shape[2]), dtype=np.float64)
        np.add.at(acc, (np.arange(ids.shape[0])[:, None], pos.cpu().numpy()), contrib)
        out.append(acc)
        offset += h.shape[1]
    return out + _ngram_contributions(model, ids, target)


def _ngram_contributions(model: TextCNN, ids: torch.Tensor, target: torch.Tensor) -> list[np.ndarray]:
    """The n-gram branch's unigram and bigram terms at each position, as margins of the target class."""
    if model.buckets <= 0:
        return []
    out = []
    for terms in model.ngram_terms(ids):                                # (B, L, C)
        own = terms.gather(2, target.view(-1, 1, 1).expand(-1, terms.shape[1], 1)).squeeze(2)   # (B, L)
        others = (terms.sum(dim=2) - own) / max(terms.shape[2] - 1, 1)
        out.append((own - others if terms.shape[2] > 1 else own).double().cpu().numpy())
    return out


def widths(model: TextCNN) -> list[int]:
    """The window width of each array window_contributions returns."""
    return [conv.kernel_size[0] for conv in model.convs] + ([1, 2] if model.buckets > 0 else [])


def _as_input(model: TextCNN, ids: np.ndarray) -> torch.Tensor:
    """Token ids as the model's input, right-padded to the widest kernel when shorter."""
    x = torch.from_numpy(np.ascontiguousarray(ids)).long()                      # (B, L)
    return F.pad(x, (0, max(0, model.min_length - x.shape[1])), value=PAD_ID)


def top_ngrams(model: TextCNN, ids: np.ndarray, target: np.ndarray, tokens: list[list[str]],
               k: int, chars: bool = False) -> list[list[NGram]]:
    """The k n-grams that pushed each row's target class most, strongest first.

    ids: (B, L) token ids; target: (B,) class index per row; tokens: each row's tokens, for the text
    (chars: split by characters, see join_tokens).
    """
    per_width = window_contributions(model, _as_input(model, ids), torch.from_numpy(target).long())
    out = []
    for row in range(len(ids)):
        candidates = [(acc[row, s], s, w) for acc, w in zip(per_width, widths(model))
                      for s in np.flatnonzero(acc[row])]
        candidates.sort(key=lambda c: -c[0])
        n = len(tokens[row])
        out.append([NGram(join_tokens(tokens[row][s:min(s + w, n)], chars) or "<pad>", int(s), w, float(c))
                    for c, s, w in candidates[:k]])
    return out


def explain_texts(model: TextCNN, tokenizer, labels: list[str], texts: list[str], k: int) -> list[dict]:
    """Each text's predicted label and probability, and the k n-grams behind it (as in `textcnn explain`)."""
    ids = tokenizer.encode(texts)                                               # (B, L)
    with torch.inference_mode():
        probs = torch.softmax(model(_as_input(model, ids)), dim=1).numpy()
    best = probs.argmax(axis=1)
    tokens = [tokenizer.split(t)[: tokenizer.config.max_length] for t in texts]
    ngrams = top_ngrams(model, ids, best, tokens, k, tokenizer.by_chars)
    return [{"text": t, "predicted_label": labels[b], "probability": round(float(p[b]), 6),
             "ngrams": [g.to_dict() for g in row]} for t, b, p, row in zip(texts, best, probs, ngrams)]
