"""Shared fixtures: the test data shipped in tests/data, and a tiny model directory built without Ray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from textcnn import storage
from textcnn.config import ModelConfig, TokenizerConfig
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import VocabBuilder

ROOT = Path(__file__).resolve().parents[1]
# The subsets of the labelled sets that the tests read, and a copy of their REFERENCE.md, shipped in the
# repository (tests/data/README.md; provenance in NOTICE): a clone needs nothing beside it. The full
# sets are for jobs/accuracy.py (--datasets or TEXTCNN_DATASETS), not for the tests.
DATASETS = ROOT / "tests" / "data"
# rt_snippets: the package's bundled sample (6,000 training rows, the whole test split) serves as is.
_FOLDERS = {"rt_snippets": ROOT / "textcnn" / "sample"}


def dataset(name: str, split: str) -> str:
    path = _FOLDERS.get(name, DATASETS / name) / f"{split}.parquet"
    if not path.exists():
        pytest.fail(f"test data missing: {path} (tests/data/README.md)")
    return str(path)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Training's default checkpoints go under XDG_CACHE_HOME: a test killed midway leaves them in a
    temporary folder, not in the user's ~/.cache (processes the tests start inherit it)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME")
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> str:
    """An untrained but complete model directory over a small English vocabulary."""
    return make_tiny_model(tmp_path)


def corrupt_pages(path, row_group: int, column: int) -> None:
    """Overwrite the pages of one column chunk of a Parquet file, its footer left sound: what a
    corrupt page behind a good footer looks like to a reader."""
    data = bytearray(Path(path).read_bytes())
    chunk = pq.ParquetFile(path).metadata.row_group(row_group).column(column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start + 8: start + chunk.total_compressed_size - 4] = b"\xab" * (chunk.total_compressed_size - 12)
    Path(path).write_bytes(bytes(data))


NIGHT_TEXTS = ["a good film", "dull and slow", "great fun", "a bad film"]


def night_corpus(folder: Path, prefix: str, rows: int) -> None:
    """A small night's input: rows (id, text) rows in two files, with a null id, an empty text and a
    repeated id among them (three dead letters)."""
    ids = [f"{prefix}{i}" for i in range(rows)]
    texts = [NIGHT_TEXTS[i % len(NIGHT_TEXTS)] for i in range(rows)]
    ids[3], texts[5], ids[7] = None, "", ids[1]
    os.makedirs(folder)
    half = rows // 2
    for part, (a, b) in enumerate(((0, half), (half, rows))):
        pq.write_table(pa.table({"id": ids[a:b], "text": texts[a:b]}), folder / f"part-{part}.parquet")


def make_tiny_model(tmp_path: Path) -> str:
    """tiny_model_dir's model, written under tmp_path (for fixtures of a wider scope)."""
    builder = VocabBuilder(TokenizerConfig(max_length=16, split="words"))
    builder.update(["a good film", "a bad film", "great fun", "dull and slow"])
    tokenizer = builder.build()
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=2, embed_dim=8, num_filters=4, kernel_sizes=(3, 4, 5),
                         ngram_buckets=1024, ngram_idf=True)
    torch.manual_seed(0)
    model = TextCNN(config)
    with torch.no_grad():
        model.ngrams.weight.normal_(std=0.5)      # untrained, but the n-gram branch counts in every score
        model.ngram_idf.uniform_(1.0, 3.0)        # and its IDF weights, which exports must carry
    out = str(tmp_path / "model")
    artifacts.save(out, model.state_dict(), config, tokenizer, ["neg", "pos"], {"note": "untrained"})
    return out


# ---- a real S3 endpoint on loopback --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


@dataclass
class S3Endpoint:
    url: str
    key: str
    secret: str
    env: dict[str, str]       # what a process needs to reach it through the AWS chain

    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=self.key, secret_key=self.secret, region="us-east-1",
                                 endpoint_override=self.url.split("://")[1], scheme="http",
                                 allow_bucket_creation=True)

    def bucket(self, name: str) -> str:
        self.fs().create_dir(name)
        return f"s3://{name}"

    def upload(self, local: str, uri: str) -> None:
        pafs.copy_files(local, uri.split("://")[1], destination_filesystem=self.fs())


def _iam_user_with_s3_access(url: str) -> tuple[str, str]:
    """A moto IAM user allowed s3:*, and its access key: moto checks signatures from then on."""
    import boto3
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="textcnn")
    iam.put_user_policy(UserName="textcnn", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="textcnn")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on a free loopback port, checking credentials after its first 3 requests
    (the IAM set-up); the AWS variables point this process at it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "moto server")
        url = f"http://127.0.0.1:{port}"
        key, secret = _iam_user_with_s3_access(url)
        env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
               "AWS_REGION": "us-east-1"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        storage.configure_s3()             # forget any filesystem resolved before
        yield S3Endpoint(url, key, secret, env)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        storage.configure_s3()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
