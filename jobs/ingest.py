"""Ingest every silo of a pipeline spec into bronze Delta tables.

    spark-submit $(lakeray spark-args) jobs/ingest.py --pipeline pipelines/churn.yaml
    python jobs/ingest.py --pipeline pipelines/churn.yaml --smoke-test
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
