"""Search hyperparameters with Ray Tune and export the best model; the options are those of `textcnn tune`.

On a running cluster (see README, "Submitting to a cluster"):

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/tune.py --train data/train.parquet --output models/rt-tuned --samples 8

Without RAY_ADDRESS (e.g. `python jobs/tune.py ...`) it starts a local Ray instead.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir's textcnn

from textcnn.cli import run_job, tune_cmd  # noqa: E402

if __name__ == "__main__":
    run_job(tune_cmd)
