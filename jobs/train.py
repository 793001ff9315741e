"""Train the best tuned configuration data-parallel on Ray Train (checkpoints, FailureConfig).

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/train.py --pipeline pipelines/churn.yaml
    python jobs/train.py --pipeline pipelines/churn.yaml --smoke-test
"""

import sys

from lakeray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
