import pytest

from textcnn.config import (
    ConfigError,
    ModelConfig,
    ScoreConfig,
    TokenizerConfig,
    TrainConfig,
    auto_ngram_buckets,
    to_dict,
    train_config_from_dict,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("make, field", [
    (lambda: ModelConfig(num_classes=1), "num_classes"),
    (lambda: ModelConfig(dropout=1.0), "dropout"),
    (lambda: ModelConfig(kernel_sizes=(0, 3)), "kernel_sizes"),
    (lambda: ModelConfig(ngram_buckets=-2), "ngram_buckets"),
    (lambda: TrainConfig(train="t", output="o", ngram_init="ones"), "ngram_init"),
    (lambda: TokenizerConfig(max_length=-1), "max_length"),
    (lambda: TrainConfig(train="t", output="o", patience=-1), "patience"),
    (lambda: TrainConfig(train="t", output="o", warmup_fraction=1.0), "warmup_fraction"),
    (lambda: TrainConfig(train="t", output="o", class_weights="heavy"), "class_weights"),
    (lambda: TrainConfig(train="t", output="o", precision="fp8"), "precision"),
    (lambda: TrainConfig(train="t", output="o", freeze_embeddings=True), "freeze_embeddings"),
    (lambda: TrainConfig(train="t", output="o", workers=0), "workers"),
    (lambda: TrainConfig(train="t", output="o", token_dropout=1.0), "token_dropout"),
    (lambda: TrainConfig(train="t", output="o", val_fraction=1.5), "val_fraction"),
    (lambda: TrainConfig(train="t", output="o", text_column="x", label_column="x"), "label_column"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", actors=-1), "actors"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", id_column="t", text_column="t"),
     "text_column"),
    (lambda: ScoreConfig(model="m", input="i", output="o"), "run_date"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_date="2026-02-30"), "run_date"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="../x"), "run_id"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", max_drift=-1), "max_drift"),
    (lambda: ScoreConfig(model="m", input="", output="o", run_id="r"), "input"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", output_table="scores"), "output_table"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", output_table="a.b-c"), "output_table"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", catalog="lake"), "catalog"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", output_table="a.b", catalog="a b"), "catalog"),
    (lambda: ScoreConfig(model="m", input="", output="o", run_id="r", input_table="raw"), "input_table"),
    (lambda: ScoreConfig(model="m", input="", output="o", run_id="r", input_table="a.b", output_table="a.b"),
     "input_table"),
    (lambda: ScoreConfig(model="m", input="i", output="o", run_id="r", since_snapshot=1), "since_snapshot"),
])
def test_bad_values_are_rejected_naming_the_field(make, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        make()


def test_train_config_round_trips_through_a_dict():
    config = TrainConfig(train="t", output="o", model=ModelConfig(kernel_sizes=[2, 3]),
                         tokenizer=TokenizerConfig(max_length=10))
    again = train_config_from_dict(to_dict(config))
    assert again == config and again.model.kernel_sizes == (2, 3)


@pytest.mark.parametrize("classes, buckets", [(2, 2**21), (3, 2**20), (5, 2**19), (10, 2**18), (100, 2**15)])
def test_automatic_ngram_buckets_keep_the_table_at_most_2_to_the_22_weights(classes, buckets):
    assert auto_ngram_buckets(classes) == buckets
    assert ModelConfig(num_classes=classes).buckets == buckets
    assert ModelConfig(num_classes=classes, ngram_buckets=64).buckets == 64
