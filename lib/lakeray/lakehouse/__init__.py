"""Where a pipeline's Delta tables live, and the small Delta helpers every stage uses."""

from lakeray.lakehouse.delta import (
    STATS_COLUMNS,
    TableVersion,
    commit_info,
    commit_metrics_since,
    latest_version,
    read_version,
    stats_columns_value,
    write_table,
)
from lakeray.lakehouse.layout import Lakehouse

__all__ = ["STATS_COLUMNS", "Lakehouse", "TableVersion", "stats_columns_value", "commit_info", "commit_metrics_since", "latest_version", "read_version", "write_table"]
