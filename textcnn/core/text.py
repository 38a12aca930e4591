"""Tokenizer and vocabulary: text in, fixed-width int32 token ids out.

Two ways to split (TokenizerConfig.split; training picks one from the corpus, textcnn.training.presets):
- "words": English (and any space-separated script) splits into lowercased words and single
  punctuation marks; Chinese, Japanese and Korean characters each become a token of their own, so
  no word segmenter is needed.
- "chars": every character is a token, and each run of whitespace one " " token. For CJK corpora:
  a Latin word or a number inside Chinese text ("iPhone", "2008") is then read character by
  character, like the Chinese around it, and the spaces that separate a title's parts stay visible.
  On thucnews_titles (CPU sweep, 3 seeds each, README "Accuracy") this raised the mean test
  accuracy from 0.858 to 0.872, and with the n-gram branch's IDF weights (the other half of the
  CJK preset) to 0.875.
Id 0 is ``<pad>`` and id 1 is ``<unk>``; padding is always on the right, so the longest row of a
batch bounds the useful width (see ``trim``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from textcnn.config import TokenizerConfig

PAD, UNK, SPACE = "<pad>", "<unk>", " "
PAD_ID, UNK_ID = 0, 1

# Han, kana, hangul and CJK punctuation blocks: one token per character. The block of CJK symbols
# starts at U+3001: U+3000 is the ideographic space, a separator like any other space.
CJK_CHARS = "\u2e80-\u2fdf\u3001-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN_RE = re.compile(rf"[{CJK_CHARS}]|[^\W{CJK_CHARS}]+|[^\w\s]")
_CJK_RE = re.compile(rf"[{CJK_CHARS}]")
_SPACES_RE = re.compile(r"\s+")


def is_cjk(char: str) -> bool:
    return _CJK_RE.match(char) is not None


def split(text: str | None, lowercase: bool = True, mode: str = "words") -> list[str]:
    """The tokens of one text under mode "words" or "chars"; None and non-strings yield no tokens."""
    if not isinstance(text, str):
        return []
    text = text.lower() if lowercase else text
    if mode == "chars":
        return list(_SPACES_RE.sub(SPACE, text.strip()))
    if mode != "words":
        raise ValueError(f"split mode must be 'words' or 'chars' (resolved from 'auto' by training), got {mode!r}")
    return _TOKEN_RE.findall(text)


def cjk_share(texts: Iterable[Any]) -> float:
    """Share of the texts' word tokens that are single CJK characters: above half, a CJK corpus."""
    tokens = [t for text in texts for t in split(text)]
    return sum(1 for t in tokens if len(t) == 1 and is_cjk(t)) / max(len(tokens), 1)


class Tokenizer:
    """A frozen vocabulary plus the rules that map text onto it."""

    def __init__(self, tokens: Sequence[str], config: TokenizerConfig) -> None:
        if len(tokens) < 2 or tokens[PAD_ID] != PAD or tokens[UNK_ID] != UNK:
            raise ValueError("vocabulary must start with <pad>, <unk>")
        if config.max_length < 1:
            raise ValueError("a tokenizer needs max_length resolved (>= 1); 0 means 'from the corpus'")
        _check_resolved(config)
        self.tokens = list(tokens)
        self.config = config
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, texts: Iterable[Any]) -> np.ndarray:
        """Token ids, truncated and right-padded to max_length."""
        texts = list(texts)
        width = self.config.max_length
        out = np.zeros((len(texts), width), dtype=np.int32)  # (B, L)
        get, lower, mode = self._ids.get, self.config.lowercase, self.config.split
        for row, text in enumerate(texts):
            ids = [get(t, UNK_ID) for t in split(text, lower, mode)[:width]]
            out[row, : len(ids)] = ids
        return out

    def split(self, text: Any) -> list[str]:
        """The tokens of text, before truncation and the vocabulary lookup."""
        return split(text, self.config.lowercase, self.config.split)

    @property
    def by_chars(self) -> bool:
        """Every character a token (spaces included): its tokens join back without separators."""
        return self.config.split == "chars"

    def to_dict(self) -> dict[str, Any]:
        return {"config": _tokenizer_config_dict(self.config), "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        # vocabularies saved before the split mode existed split words
        return cls(d["tokens"], TokenizerConfig(**{"split": "words", **d["config"]}))

    def hash(self) -> str:
        """Identifies the vocabulary and its rules: sha256 of the canonical JSON, 16 hex digits."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def _tokenizer_config_dict(config: TokenizerConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def _check_resolved(config: TokenizerConfig) -> None:
    if config.split == "auto":
        raise ValueError("a tokenizer needs split resolved to 'words' or 'chars'; 'auto' means 'from the corpus'")


class VocabBuilder:
    """Counts tokens over a stream of text batches, then freezes the most frequent into a Tokenizer."""

    def __init__(self, config: TokenizerConfig) -> None:
        _check_resolved(config)
        self.config = config
        self.counts: Counter[str] = Counter()

    def update(self, texts: Iterable[Any]) -> list[list[str]]:
        """Count the tokens of texts; returns them, one list per text."""
        split_texts = [split(text, self.config.lowercase, self.config.split) for text in texts]
        for tokens in split_texts:
            self.counts.update(tokens)
        return split_texts

    def build(self, config: TokenizerConfig | None = None) -> Tokenizer:
        """The frozen vocabulary, under config (default: the builder's; the counts do not depend on
        max_length, so a length chosen after counting can be given here)."""
        config = config or self.config
        if config.split != self.config.split:
            raise ValueError(f"the tokens were counted split as {self.config.split!r}, not {config.split!r}")
        keep = [(t, c) for t, c in self.counts.items() if c >= config.min_count]
        keep.sort(key=lambda tc: (-tc[1], tc[0]))  # by count, ties by token: deterministic
        tokens = [PAD, UNK] + [t for t, _ in keep[: config.max_vocab - 2]]
        return Tokenizer(tokens, config)


_TOKENIZERS: dict[str, Tokenizer] = {}


def cached_tokenizer(vocab: dict[str, Any], vocab_hash: str) -> Tokenizer:
    """Tokenizers are rebuilt once per worker process, not once per batch."""
    if vocab_hash not in _TOKENIZERS:
        _TOKENIZERS[vocab_hash] = Tokenizer.from_dict(vocab)
    return _TOKENIZERS[vocab_hash]


def trim(ids, min_width: int):
    """Drop the all-padding columns on the right, keeping at least min_width columns.

    Works on NumPy arrays and torch tensors alike: with right padding and no <pad> inside a row,
    the longest row's token count is the useful width.
    """
    longest = int((ids != PAD_ID).sum(1).max()) if len(ids) else 0
    return ids[:, : max(longest, min_width)]
