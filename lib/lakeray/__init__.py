"""lakeray: end-to-end ML pipelines on Spark + Delta Lake + Ray."""

import os as _os

__version__ = "0.1.0"

# lakeray sends nothing anywhere by default. These switches must be set before mlflow or ray is
# imported (mlflow starts its telemetry client at import), so they live here, where every lakeray
# module's import - in the driver, in Ray workers and in Serve replicas - runs first. A user who
# wants to share usage data sets the variable to the other value; setdefault leaves it alone.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",     # MLflow >= 3.x telemetry client
    "RAY_USAGE_STATS_ENABLED": "0",         # Ray's usage stats (a local Ray started by lakeray)
}
for _name, _value in TELEMETRY_OFF.items():
    _os.environ.setdefault(_name, _value)
