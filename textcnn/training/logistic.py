"""A logistic-regression start for the n-gram branch (the default for small training sets whose branch
weighs n-grams by IDF: presets.ngram_init): before the CNN trains, the branch's weights and the head's
bias are fitted as L2-regularised logistic regression over the branch's own features (hashed unigrams
and bigrams, IDF-weighted when the model has IDF, rows of unit L2 norm), the model TF-IDF + LR is on
these features.

Why: on 500 training rows the text CNN started from naive Bayes counts trailed TF-IDF + LR by 0.9-1.7
points on three of the five shared sets (docs/learning-curves.md): 30 epochs of joint training
do not take the branch to the linear optimum the peer solves for, and the convolutions have too few
rows to make up the rest. Started from that optimum over IDF-weighted features (TF-IDF + LR's own
model), the joint training adds the CNN to it; over unweighted n-grams the fit is a weaker start than
naive Bayes counts, so presets keeps those on naive Bayes.

The objective is scikit-learn's multinomial one divided by the row count: mean loss + |W|^2 / (2 C rows),
the bias unpenalised, C = LOGISTIC_C as the TF-IDF + LR peer uses; its loss is the run's own (softmax
cross-entropy, or a sigmoid per class for multi-label, with the class weights). For two classes the
softmax's penalty on both weight columns halves the one on their difference: scikit-learn's binary
model at 2 C (the form the small-set screening measured). Full-batch L-BFGS
over the buckets in use (W: (used, C)); every worker holds its shard, and the loss and gradients are
summed across workers (``reduce``) at each evaluation, so every worker takes the same steps: L-BFGS
decides from those sums and its own history alone, so workers of one CPU type and thread count
evaluate the same number of times (a worker group of mixed CPUs could round a step differently and
leave one all-reduce waiting). Meant for small sets: each worker keeps its shard's features in memory
while it fits.
Ray-free, like naive_bayes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from textcnn.core.model import TextCNN
from textcnn.training.loop import Batch, Objective

LOGISTIC_C = 10.0          # inverse regularisation strength, as the TF-IDF + LR peer (REFERENCE.md)
MAX_ITERATIONS = 300       # L-BFGS iterations; the fits of the shared sets' 500-row samples converge well before


@dataclass
class Features:
    """One batch's branch features, gathered once: positions into the fitted (used, C) table and
    their weights, for the unigrams and bigrams of each row, and the batch's labels."""
    uni: torch.Tensor       # (B, L) int64 positions
    bi: torch.Tensor        # (B, L)
    uni_w: torch.Tensor     # (B, L, 1) weights (0: padding)
    bi_w: torch.Tensor      # (B, L, 1)
    labels: torch.Tensor    # (B,) class ids or (B, C) multi-hot


@torch.no_grad()
def gather(net: TextCNN, batches: Iterable[Batch], used: torch.Tensor) -> list[Features]:
    """The features of batches, their buckets mapped to positions in used (sorted bucket ids); a
    bucket outside used (padding only: used holds every bucket a real n-gram falls in) maps to 0."""
    position = torch.zeros(net.buckets, dtype=torch.long)
    position[used] = torch.arange(len(used))
    out = []
    for batch in batches:
        unigram, bigram, uni_w, bi_w = net.ngram_weights(batch["ids"].cpu())
        out.append(Features(position[unigram], position[bigram], uni_w, bi_w, batch["label"].cpu()))
    return out


def branch_logits(w: torch.Tensor, bias: torch.Tensor, f: Features) -> torch.Tensor:
    """(B, C) logits of the n-gram branch with weights w (used, C) plus bias (C,)."""
    return (w[f.uni] * f.uni_w).sum(dim=1) + (w[f.bi] * f.bi_w).sum(dim=1) + bias     # (B, C)


def fit(features: list[Features], used: int, classes: int, rows: int, objective: Objective,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        c: float = LOGISTIC_C) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitted weights (used, C) and bias (C,); rows: the rows of every worker together."""
    w = torch.zeros(used, classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    w.grad, bias.grad = torch.zeros_like(w), torch.zeros_like(bias)
    optimizer = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=MAX_ITERATIONS, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        """The objective over every worker's rows; its gradient left in w.grad and bias.grad."""
        optimizer.zero_grad(set_to_none=False)
        loss = torch.zeros(())
        for f in features:                      # a graph per batch: memory of one batch, not of the shard
            batch_loss = objective.loss(branch_logits(w, bias, f), f.labels, reduction="sum")
            batch_loss.backward()
            loss += batch_loss.detach()
        packed = torch.cat([loss.reshape(1), w.grad.reshape(-1), bias.grad])
        if reduce is not None:                  # summed in float64: every worker gets the same bits
            packed = reduce(packed.double()).float()
        with torch.no_grad():
            w.grad.copy_(packed[1:1 + w.numel()].view_as(w) / rows + w / (c * rows))
            bias.grad.copy_(packed[1 + w.numel():] / rows)
            return packed[0] / rows + (w * w).sum() / (2 * c * rows)

    optimizer.step(closure)
    return w.detach(), bias.detach()


@torch.no_grad()
def start(net: TextCNN, batches: list[Batch], counts: torch.Tensor, objective: Objective,
          reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """Set net's n-gram branch (unwrapped, its IDF already set) and head bias to the logistic
    regression over batches; counts: naive_bayes.count_ngrams' counts summed over workers, which name
    the buckets in use and the rows. Buckets no training row uses stay 0: they carry no evidence."""
    used = torch.nonzero(counts[-1, :-1] > 0).flatten()
    rows = max(1, int(counts[-1, -1]))
    with torch.enable_grad():
        w, bias = fit(gather(net, batches, used), len(used), net.config.num_classes, rows, objective, reduce)
    if not objective.multi_label:               # the softmax ignores what every class shares
        w, bias = w - w.mean(dim=1, keepdim=True), bias - bias.mean()
    net.ngrams.weight.zero_()
    net.ngrams.weight[used] = w
    net.head.bias.copy_(bias)
