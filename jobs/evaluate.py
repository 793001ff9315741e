"""Evaluate the newest trained model (Dask scoring, fairness, report) and gate its promotion.

Exits 3 when the gate refuses the candidate, naming the failed checks.

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/evaluate.py --pipeline pipelines/churn.yaml
    python jobs/evaluate.py --pipeline pipelines/churn.yaml --smoke-test
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
