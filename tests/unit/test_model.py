import pytest
import torch

from textcnn.config import ModelConfig
from textcnn.core.model import TextCNN

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_logits_have_one_column_per_class(classes):
    model = TextCNN(ModelConfig(vocab_size=50, num_classes=classes, kernel_sizes=(3, 4, 5))).eval()
    ids = torch.randint(0, 50, (7, 20))
    assert model(ids).shape == (7, classes)


def test_shortest_input_is_the_widest_kernel():
    model = TextCNN(ModelConfig(vocab_size=50, kernel_sizes=(2, 6))).eval()
    assert model.min_length == 6
    assert model(torch.randint(0, 50, (3, 6))).shape == (3, 2)


@pytest.mark.parametrize("length", [1, 3, 8])
def test_a_rows_logits_do_not_depend_on_the_padding_of_its_batch(length):
    torch.manual_seed(0)
    model = TextCNN(ModelConfig(vocab_size=50, kernel_sizes=(3, 4, 5))).eval()
    row = torch.zeros(1, 40, dtype=torch.long)
    row[0, :length] = torch.randint(2, 50, (length,))
    with torch.no_grad():
        alone = model(row[:, :max(length, model.min_length)])
        padded = model(row)                                   # 40 columns, mostly padding
    torch.testing.assert_close(alone, padded)


def test_model_needs_a_vocabulary():
    with pytest.raises(ValueError, match="vocab_size"):
        TextCNN(ModelConfig())
