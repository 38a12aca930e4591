"""Score a Parquet corpus with a trained model on the Ray cluster; options as `textcnn score`.

On a running cluster (see README, "Submitting to a cluster"):

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/score.py --model models/rt --input data/corpus --output out/rt --actors 2

Without RAY_ADDRESS (e.g. `python jobs/score.py ...`) it starts a local Ray instead.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir's textcnn

from textcnn.cli import run_job, score_cmd  # noqa: E402

if __name__ == "__main__":
    run_job(score_cmd)
