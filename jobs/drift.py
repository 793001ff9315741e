"""Drift of served traffic (the inference log) against the champion's training baseline profile.

    spark-submit $(lakeray spark-args) jobs/drift.py --pipeline pipelines/churn.yaml --window 1d

Writes the drift-metrics Delta table and an HTML report; alerts (log + webhook) on drift.
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["drift", *sys.argv[1:]]))
