import threading

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.linear_model import LogisticRegression

from textcnn.config import ModelConfig
from textcnn.core.model import TextCNN
from textcnn.training import logistic
from textcnn.training.loop import Objective
from textcnn.training.naive_bayes import count_ngrams
from textcnn.training.ngram_start import init_ngrams

pytestmark = pytest.mark.unit

VOCAB = 40


def model(classes=2, ngram_idf=False):
    torch.manual_seed(0)
    return TextCNN(ModelConfig(vocab_size=VOCAB, num_classes=classes, kernel_sizes=(1, 2), ngram_buckets=4096,
                               ngram_idf=ngram_idf))


def noisy_rows(n=120, seed=0):
    """Rows of 3-7 tokens: class 1 favours tokens 2-9, class 0 tokens 10-17, with shared words 18-39,
    so no n-gram decides a row alone and the classes overlap (the fit is not at infinity)."""
    rng = np.random.default_rng(seed)
    ids, labels = torch.zeros(n, 8, dtype=torch.long), []
    for i in range(n):
        label = int(i % 3 == 0)            # a third of the rows: class 1 (the bias matters)
        own = range(2, 10) if label else range(10, 18)
        row = [int(rng.choice(own)) if rng.random() < 0.35 else int(rng.integers(18, VOCAB))
               for _ in range(rng.integers(3, 8))]
        ids[i, :len(row)] = torch.tensor(row)
        labels.append(label)
    return ids, torch.tensor(labels)


def sparse_features(net, ids):
    """The branch's features as a (rows, buckets) matrix, for scikit-learn."""
    unigram, bigram, uni_w, bi_w = net.ngram_weights(ids)
    rows = torch.arange(len(ids)).unsqueeze(1).expand_as(ids)
    r, c = torch.cat([rows.flatten(), rows.flatten()]), torch.cat([unigram.flatten(), bigram.flatten()])
    v = torch.cat([uni_w.flatten(), bi_w.flatten()])
    return scipy.sparse.csr_matrix((v.numpy(), (r.numpy(), c.numpy())), shape=(len(ids), net.buckets))


@pytest.mark.parametrize("ngram_idf", [False, True])
def test_the_start_is_scikit_learns_logistic_regression_on_the_branchs_features(ngram_idf):
    ids, labels = noisy_rows()
    net = model(ngram_idf=ngram_idf)
    init_ngrams(net, [{"ids": ids[:50], "label": labels[:50]}, {"ids": ids[50:], "label": labels[50:]}],
                Objective(multi_label=False), start="logistic")
    # a softmax over two classes with |w0|^2 + |w1|^2 penalised is the binary model of the logit gap
    # w1 - w0 with half the penalty: scikit-learn's binary regression at 2 C
    reference = LogisticRegression(C=2 * logistic.LOGISTIC_C, tol=1e-10, max_iter=10_000)
    reference.fit(sparse_features(net, ids), labels.numpy())
    with torch.no_grad():
        branch = sum(t.sum(dim=1) for t in net.ngram_terms(ids)) + net.head.bias        # (N, 2)
    gap = (branch[:, 1] - branch[:, 0]).numpy()                                          # the binary logit
    # float32 L-BFGS against scikit-learn's float64: logits of up to ~4 agree to within 0.005
    assert np.allclose(gap, reference.decision_function(sparse_features(net, ids)), atol=5e-3)
    w = net.ngrams.weight.detach()
    assert torch.allclose(w.sum(dim=1), torch.zeros(len(w)), atol=1e-5)                  # centred over classes
    assert float(net.head.bias.detach().sum()) == pytest.approx(0.0, abs=1e-6)
    in_use = count_ngrams(net, [{"ids": ids, "label": labels}], multi_label=False)[-1, :-1] > 0
    assert torch.count_nonzero(w[~in_use]) == 0 and torch.count_nonzero(w[in_use]) > 0   # unseen buckets: 0


class ThreadSum:
    """An all-reduce (sum) among threads, each a worker: what torch.distributed does across processes."""

    def __init__(self, workers: int) -> None:
        self.barrier, self.parts = threading.Barrier(workers), [None] * workers

    def reduce_for(self, rank: int):
        def reduce(t: torch.Tensor) -> torch.Tensor:
            self.parts[rank] = t.clone()
            self.barrier.wait()
            total = sum(self.parts)            # the same order on every worker
            self.barrier.wait()                # no part is replaced before every worker has summed
            return total
        return reduce


def test_workers_holding_shards_take_the_one_worker_steps():
    ids, labels = noisy_rows(90, seed=1)
    labels = torch.where((labels == 0) & (ids[:, 0] % 2 == 0), 2, labels)              # three classes
    net, objective = model(classes=3), Objective(multi_label=False)
    counts = count_ngrams(net, [{"ids": ids, "label": labels}], multi_label=False)
    used = torch.nonzero(counts[-1, :-1] > 0).flatten()
    whole = logistic.fit(logistic.gather(net, [{"ids": ids, "label": labels}], used), len(used), 3, 90, objective)
    shards = [logistic.gather(net, [{"ids": ids[s], "label": labels[s]}], used) for s in (slice(0, 60), slice(60, 90))]
    summing, results = ThreadSum(2), [None, None]

    def worker(rank: int) -> None:
        results[rank] = logistic.fit(shards[rank], len(used), 3, 90, objective, reduce=summing.reduce_for(rank))
    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert torch.allclose(results[0][0], whole[0], atol=1e-3) and torch.allclose(results[0][1], whole[1], atol=1e-3)


def test_multi_label_start_fits_a_sigmoid_per_class():
    ids, labels = noisy_rows(90, seed=2)
    multi_hot = torch.stack([labels.float(), (ids[:, 0] >= 18).float()], dim=1)           # (N, 2)
    net = model()
    init_ngrams(net, [{"ids": ids, "label": multi_hot}], Objective(multi_label=True), start="logistic")
    features = sparse_features(net, ids)
    with torch.no_grad():
        branch = sum(t.sum(dim=1) for t in net.ngram_terms(ids)) + net.head.bias        # (N, 2)
    for c in range(2):
        reference = LogisticRegression(C=logistic.LOGISTIC_C, tol=1e-10, max_iter=10_000)
        reference.fit(features, multi_hot[:, c].numpy())
        assert np.allclose(branch[:, c].numpy(), reference.decision_function(features), atol=2e-3)


def test_a_worker_without_rows_still_takes_the_steps():
    net = model()
    ids, labels = noisy_rows(30)
    counts = count_ngrams(net, [{"ids": ids, "label": labels}], multi_label=False)
    used = torch.nonzero(counts[-1, :-1] > 0).flatten()
    w, bias = logistic.fit([], len(used), 2, 30, Objective(multi_label=False))
    assert torch.count_nonzero(w) == 0 and torch.count_nonzero(bias) == 0     # nothing to fit, no NaN
