"""Where a pipeline's Delta tables live, and the small Delta helpers every stage uses."""

from lakeray.lakehouse.delta import (
    TableVersion,
    commit_actions,
    commit_info,
    commit_metrics_since,
    latest_version,
    read_version,
    stats_property,
    table_bytes,
    table_files,
    table_id,
    write_table,
)
from lakeray.lakehouse.layout import Lakehouse

__all__ = ["Lakehouse", "TableVersion", "commit_actions", "commit_info", "commit_metrics_since", "latest_version", "read_version",
           "stats_property", "table_bytes", "table_files", "table_id", "write_table"]
