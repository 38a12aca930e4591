"""`python jobs/train.py` SIGKILLed mid-way and started again with the same --run-name and
--storage-path continues from its last checkpoint, with checkpoints on local disk and on S3."""

import json
import time

import pyarrow.fs as pafs
import pytest

from tests.conftest import dataset
from tests.procs import Jobs
from textcnn import artifacts, storage

pytestmark = pytest.mark.e2e

EPOCHS = 8


def _checkpoints(uri: str) -> int:
    fs, path = storage.resolve(uri)
    try:
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError:
        return 0
    return sum(1 for f in found if f.base_name == "checkpoint.pt")


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """The root of the checkpoints and the model: a local folder, or a bucket on the S3 endpoint."""
    if request.param == "local":
        return str(tmp_path / "out"), ()
    s3 = request.getfixturevalue("s3")
    return s3.bucket("textcnn-resume"), (s3.key, s3.secret)


def test_a_killed_training_run_resumes_from_its_last_checkpoint(where, tmp_path):
    where, secrets = where
    model, checkpoints = storage.join(where, "model"), storage.join(where, "checkpoints")
    args = ["--train", dataset("sms_spam", "train"), "--output", model,
            "--epochs", str(EPOCHS), "--patience", "0", "--filters", "16", "--embed-dim", "32",
            "--run-name", "nightly-train", "--storage-path", checkpoints, "--workers", "1"]
    jobs = Jobs(tmp_path)
    try:
        first = jobs.start("first", "train", args)
        deadline = time.time() + 240
        while _checkpoints(checkpoints) < 2 and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before two checkpoints: " + jobs.log("first")[-3000:]
        jobs.kill(first)                                   # SIGKILL: no cleanup runs
        assert not storage.exists(storage.join(model, "config.json"))

        again = jobs.start("again", "train", args)
        assert again.wait(timeout=300) == 0, jobs.log("again")[-3000:]
    finally:
        jobs.stop_all()
    history = json.loads(storage.read_text(storage.join(model, "metrics.json")))["history"]
    assert [h["epoch"] for h in history] == list(range(EPOCHS))        # every epoch once
    resumed_at = history[-1]["attempt_start_epoch"]
    assert 1 <= resumed_at < EPOCHS, history                           # the second run skipped epochs
    assert all(h["attempt_start_epoch"] == 0 for h in history[:resumed_at])
    assert all(h["attempt_start_epoch"] == resumed_at for h in history[resumed_at:])
    assert artifacts.verify(model) == []
    saved = storage.read_text(storage.join(model, "config.json"))
    assert not any(secret in saved for secret in secrets)      # the filesystem's keys are not saved
