"""Building the SparkSession (with Delta Lake) from lakeray's settings."""

from lakeray.spark.session import build_spark, jvm_dependencies, spark_submit_args

__all__ = ["build_spark", "jvm_dependencies", "spark_submit_args"]
