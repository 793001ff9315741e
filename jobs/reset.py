"""Remove a pipeline stage's Delta tables and streaming checkpoints so that it starts over.

    python jobs/reset.py --pipeline pipelines/churn.yaml --stage ingest --source customers [--dry-run]
    spark-submit $(lakeray spark-args) jobs/reset.py --pipeline ... --env cluster   # s3a://... locations
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["reset", *sys.argv[1:]]))
