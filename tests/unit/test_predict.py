"""`textcnn predict`: texts from stdin or a file, one JSON line out per text, without Ray."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import ROOT
from textcnn.cli import main
from textcnn.config import ModelConfig, TokenizerConfig
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import VocabBuilder
from textcnn.scoring.scorer import Scorer

pytestmark = pytest.mark.unit

TEXTS = ["a good film", "dull and slow", "great fun", "a bad film"]


def predict(model: str, *args: str, input: str | bytes | None = None) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(main, ["predict", "--model", model, *args], input=input)
    lines = [json.loads(line) for line in result.stdout.splitlines() if not line.startswith("Error: ")]
    return result.exit_code, lines, result.output


def expected(model: str, texts: list[str]) -> np.ndarray:
    """The probabilities a scoring run's Scorer gives texts."""
    scorer = Scorer(model)
    return scorer.probabilities(scorer.loaded.tokenizer.encode(texts))


def test_stdin_gives_a_line_per_text_with_a_scoring_runs_probabilities(tiny_model_dir):
    code, lines, _ = predict(tiny_model_dir, input="\n".join(TEXTS) + "\n")
    assert code == 0 and len(lines) == 4
    probs = expected(tiny_model_dir, TEXTS)
    labels = np.array(["neg", "pos"])[probs.argmax(axis=1)]
    assert [line["label"] for line in lines] == labels.tolist()
    np.testing.assert_allclose([line["probability"] for line in lines], probs.max(axis=1), atol=1e-6)
    assert all(set(line) == {"label", "probability"} for line in lines)


def test_bad_lines_print_their_reason_so_output_line_n_answers_input_line_n(tiny_model_dir):
    text = (b"a good film\n\n \t \ngood\x00film\n" + "good\u0085film".encode()     # U+0085: a C1 control
            + b"\r\n\xff\xfe bad\nqwzx vbnm\r\ngreat fun")
    code, lines, _ = predict(tiny_model_dir, "--max-text-chars", "100", input=text)
    assert code == 0
    assert [line.get("error") for line in lines] == [None, "text_empty", "text_empty", "text_control_chars",
                                                     "text_control_chars", "text_invalid_utf8",
                                                     "text_unknown_only", None]
    assert lines[-1]["label"] in ("neg", "pos")
    _, lines, _ = predict(tiny_model_dir, "--max-text-chars", "5", "--allow-unknown-only", input="qwzx\ngreat fun")
    assert "label" in lines[0] and lines[1] == {"error": "text_too_long"}


def test_txt_file_in_small_batches_with_every_class(tiny_model_dir, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\r\n".join(TEXTS * 5))
    code, lines, _ = predict(tiny_model_dir, "--input", str(path), "--all", "--batch-size", "3")
    assert code == 0 and len(lines) == 20
    probs = expected(tiny_model_dir, TEXTS * 5)
    np.testing.assert_allclose([[line["probabilities"]["neg"], line["probabilities"]["pos"]] for line in lines],
                               probs, atol=1e-6)
    assert list(lines[0]["probabilities"]) == ["neg", "pos"]


def test_csv_with_quoted_line_breaks_and_other_columns(tiny_model_dir, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,body,n\n1,"a good film",3\n2,"dull\nand slow",4\n3,,5\n4,"great fun, a bad film",6\n')
    code, lines, _ = predict(tiny_model_dir, "--input", str(path), "--text-column", "body")
    assert code == 0 and len(lines) == 4 and lines[2] == {"error": "text_empty"}
    probs = expected(tiny_model_dir, ["a good film", "dull\nand slow", "great fun, a bad film"])
    np.testing.assert_allclose([lines[i]["probability"] for i in (0, 1, 3)], probs.max(axis=1), atol=1e-6)
    code, _, output = predict(tiny_model_dir, "--input", str(path))
    assert code == 1 and output.strip().endswith(f"Error: DataError: {path}: no column 'text'")


def test_jsonl_blank_and_null_texts_and_a_line_without_the_column(tiny_model_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a good film", "x": 1}\n\n{"text": null}\n{"text": "great fun"}\n')
    code, lines, _ = predict(tiny_model_dir, "--input", str(path))
    assert code == 0 and [line.get("error") for line in lines] == [None, "text_empty", "text_null", None]
    path.write_text('{"text": "a good film"}\n{"body": "great fun"}\n')
    code, _, output = predict(tiny_model_dir, "--input", str(path))
    assert code == 1 and output.strip().endswith(f"{path}: line 2 has no column 'text'")
    path.write_text('{"text": "a good film"}\n{"text": 5}\n')
    assert predict(tiny_model_dir, "--input", str(path))[2].strip().endswith("column 'text' is int, not a string")


def test_parquet_of_dictionary_and_binary_texts(tiny_model_dir, tmp_path):
    pq.write_table(pa.table({"text": pa.array(TEXTS + [""]).dictionary_encode()}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"body": pa.array([t.encode() for t in TEXTS], pa.binary())}), tmp_path / "b.pq")
    code, lines, _ = predict(tiny_model_dir, "--input", str(tmp_path / "a.parquet"), "--batch-size", "2")
    assert code == 0 and len(lines) == 5 and lines[4] == {"error": "text_empty"}
    np.testing.assert_allclose([line["probability"] for line in lines[:4]],
                               expected(tiny_model_dir, TEXTS).max(axis=1), atol=1e-6)
    code, lines_b, _ = predict(tiny_model_dir, "--input", str(tmp_path / "b.pq"), "--text-column", "body")
    assert code == 0 and lines_b == lines[:4]
    code, _, output = predict(tiny_model_dir, "--input", str(tmp_path / "b.pq"))
    assert code == 1 and "b.pq: no column 'text'" in output


def test_unreadable_inputs_end_in_one_line(tiny_model_dir, tmp_path):
    (tmp_path / "junk.parquet").write_text("not parquet")
    for args, says in (([str(tmp_path / "nowhere.txt")], "nowhere.txt: not found"),
                       ([str(tmp_path / "junk.parquet")], "junk.parquet: not readable as Parquet")):
        code, lines, output = predict(tiny_model_dir, "--input", *args)
        assert code == 1 and lines == [] and output.count("\n") == 1 and says in output, output
    code, _, output = predict(str(tmp_path / "no-model"), input="a good film\n")
    assert code == 1 and "no-model" in output and "Traceback" not in output


def test_multi_label_models_print_the_labels_at_or_above_their_thresholds(tmp_path):
    builder = VocabBuilder(TokenizerConfig(max_length=8, split="words"))
    builder.update(TEXTS)
    tokenizer = builder.build()
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=3, embed_dim=8, num_filters=4,
                         kernel_sizes=(1, 2), multi_label=True)
    torch.manual_seed(0)
    model = str(tmp_path / "ml")
    artifacts.save(model, TextCNN(config).state_dict(), config, tokenizer, ["a", "b", "c"], {},
                   thresholds=[0.0, 1.0, 0.5])
    code, lines, _ = predict(model, "--all", input="a good film\ngreat fun\n")
    assert code == 0
    for line in lines:
        probs = line["probabilities"]
        assert line["labels"] == ["a"] + (["c"] if probs["c"] >= 0.5 else [])
        assert line["label"] == max(probs, key=probs.get)


def test_predict_runs_without_importing_ray(tiny_model_dir, tmp_path):
    """In a process of its own: a test session has imported Ray already."""
    script = ("import sys\n"
              "from textcnn.cli import main\n"
              "main(['predict', '--model', sys.argv[1]], standalone_mode=False)\n"
              "try:\n"
              "    main(['predict', '--model', sys.argv[1], '--input', sys.argv[2]], standalone_mode=False)\n"
              "except Exception as e:\n"
              "    print('error:', e, file=sys.stderr)\n"
              "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))[:5]\n")
    done = subprocess.run([sys.executable, "-c", script, tiny_model_dir, str(tmp_path / "nowhere.csv")],
                          input="a good film\n\n", capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=Path(ROOT))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line).get("error") for line in done.stdout.splitlines()] == [None, "text_empty"]
    assert "nowhere.csv: not found" in done.stderr
