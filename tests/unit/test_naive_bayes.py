import pytest
import torch

from textcnn.config import ModelConfig
from textcnn.core.model import TextCNN
from textcnn.training.loop import Objective
from textcnn.training.naive_bayes import count_ngrams, idf, weights
from textcnn.training.ngram_start import init_ngrams

pytestmark = pytest.mark.unit


def model(classes=2, buckets=1024, ngram_idf=False):
    return TextCNN(ModelConfig(vocab_size=20, num_classes=classes, kernel_sizes=(1, 2), ngram_buckets=buckets,
                               ngram_idf=ngram_idf))


def batch(rows, labels):
    ids = torch.zeros(len(rows), 6, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return {"ids": ids, "label": torch.tensor(labels)}


def test_counts_are_rows_per_class_holding_each_ngram_once():
    net = model()
    b = batch([[5, 5, 5], [5, 6], [7]], [0, 0, 1])
    counts = count_ngrams(net, [b], multi_label=False)
    uni5, bi55 = 5, int(net.ngram_keys(torch.tensor([[5, 5]]))[1][0, 0])
    assert counts[:, uni5].tolist() == [2, 0, 2]      # "5" thrice in row 0, once in row 1: two rows of class 0
    assert counts[:, bi55].tolist() == [1, 0, 1]      # "5 5" twice in row 0: one row
    assert counts[:, 7].tolist() == [0, 1, 1]
    assert counts[0, :-1].sum() == 2 + 3              # class 0 rows: {5, 5 5} and {5, 6, 5 6}
    assert counts[:, -1].tolist() == [2, 1, 3]        # the rows themselves, per class and in all
    assert counts[-1].sum() == counts[:-1].sum()      # single-label: every row in exactly one class


def test_a_model_started_from_naive_bayes_separates_by_words_before_any_training():
    torch.manual_seed(0)
    good, bad = [2, 3, 4], [10, 11, 12]
    rows = [[words[i % 3], 8, words[(i + 1) % 3]] for words in (good, bad) for i in range(30)]
    labels = [1] * 30 + [0] * 30
    net = model()
    init_ngrams(net, [batch(rows, labels)], Objective(multi_label=False))
    net.eval()
    test = batch([[8, 3, 8], [11, 8], [8, 8, 2], [12]], [1, 0, 1, 0])
    with torch.no_grad():
        branch = sum(t.sum(dim=1) for t in net.ngram_terms(test["ids"]))     # (B, C)
    assert branch.argmax(dim=1).tolist() == [1, 0, 1, 0]
    w = net.ngrams.weight.detach()
    assert torch.allclose(w.sum(dim=1), torch.zeros(len(w)), atol=1e-5)   # centred over classes
    assert float(w[8, 0]) == pytest.approx(0.0, abs=1e-6)                   # in every row of both classes


def test_multi_label_weights_are_one_vs_rest_log_count_ratios():
    # bucket 0: in every row of class 0 and in no other row; bucket 1: in every row
    counts = torch.tensor([[4.0, 4.0, 0.0, 4.0], [0.0, 6.0, 6.0, 6.0], [4.0, 10.0, 6.0, 10.0]], dtype=torch.float64)
    w = weights(counts, multi_label=True)                                    # (3 buckets, 2 classes)
    assert w.shape == (3, 2)
    assert w[0, 0] > 0 > w[0, 1] and w[2, 1] > 0 > w[2, 0]
    single = weights(counts, multi_label=False)
    assert torch.allclose(single.sum(dim=1), torch.zeros(3), atol=1e-6)


def test_multi_label_counts_take_multi_hot_labels():
    net = model(classes=3)
    b = {"ids": torch.tensor([[5, 6, 0], [5, 0, 0]]), "label": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])}
    counts = count_ngrams(net, [b], multi_label=True)
    assert counts[:, 5].tolist() == [1, 0, 2, 2]


def test_no_branch_no_counting():
    net = model(buckets=0)
    init_ngrams(net, [batch([[5]], [0])], Objective(multi_label=False))
    assert torch.count_nonzero(net.ngrams.weight) == 0


def test_idf_weighs_rare_ngrams_up_and_rows_keep_unit_norm():
    net = model(ngram_idf=True)
    rows, labels = [[5, 6], [5, 7], [5, 6], [5, 8]], [0, 1, 0, 1]
    init_ngrams(net, [batch(rows, labels)], Objective(multi_label=False), start="zeros")
    assert torch.count_nonzero(net.ngrams.weight) == 0                    # zeros start: only the IDF is set
    assert float(net.ngram_idf[5]) == pytest.approx(1.0)                 # in every row: ln(5/5) + 1
    assert float(net.ngram_idf[7]) == pytest.approx(float(torch.log(torch.tensor(5 / 2))) + 1)
    assert float(net.ngram_idf[9]) == pytest.approx(float(torch.log(torch.tensor(5.0))) + 1)   # never seen
    with torch.no_grad():
        net.ngrams.weight.fill_(1.0)
        uni, bi = net.ngram_terms(batch([[5, 7]], [0])["ids"])                # (1, L, C) each
    weights_ = torch.cat([uni[0, :, 0], bi[0, :, 0]])
    assert float(weights_.norm()) == pytest.approx(1.0, abs=1e-6)         # TF-IDF rows have unit norm
    assert float(uni[0, 1, 0]) > float(uni[0, 0, 0])                      # the rare "7" outweighs "5"
    assert "ngram_idf" in net.state_dict() and "ngram_idf" not in model().state_dict()


def test_idf_from_counts_summed_over_workers():
    counts = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0], [2.0, 1.0, 3.0]], dtype=torch.float64)
    assert idf(counts).tolist() == pytest.approx([float(torch.log(torch.tensor(4 / 3))) + 1,
                                                  float(torch.log(torch.tensor(2.0))) + 1])
