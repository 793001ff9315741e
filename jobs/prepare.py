"""Clean bronze into silver and gold Delta tables, with quarantine, accounting and splits.

    spark-submit $(lakeray spark-args) jobs/prepare.py --pipeline pipelines/churn.yaml
    python jobs/prepare.py --pipeline pipelines/churn.yaml --smoke-test
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
