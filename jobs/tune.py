"""Model selection on Ray Tune (Optuna + ASHA) over the families in conf/, leaderboard to MLflow.

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/tune.py --pipeline pipelines/churn.yaml --gold-version latest
    python jobs/tune.py --pipeline pipelines/churn.yaml --gold-version 3
    python jobs/tune.py --pipeline pipelines/churn.yaml --smoke-test
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
