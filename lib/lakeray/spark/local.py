"""Small driver-side rows as a DataFrame planned in the JVM alone."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def local_frame(spark, rows: list[tuple], schema: T.StructType) -> DataFrame:
    """`rows` (tuples in `schema`'s field order) as a DataFrame of literals cast to the schema's types.

    `spark.createDataFrame(rows, schema)` maps the pickled rows through a Python worker, which a session
    first has to start (its worker daemon: about 1 s of a cold 20k-row ingest); a few rows of bookkeeping
    need none. For a handful of rows: every value becomes part of the plan (none: an empty frame)."""
    width = len(schema.fields)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, the schema {width} fields ({schema.simpleString()})")
    # a literal that is not null makes its field non-nullable, and a table created from such a frame would
    # then refuse nulls in that column; one all-null row, filtered out again, keeps every field nullable
    # (the frame's schema is `schema`, as createDataFrame's is)
    keep = "__local_frame_row"
    structs = [F.struct(F.lit(True).alias(keep), *[F.lit(value).cast(field.dataType).alias(field.name)
                                                    for value, field in zip(row, schema.fields, strict=True)]) for row in rows]
    nulls = F.struct(F.lit(None).cast("boolean").alias(keep), *[F.lit(None).cast(f.dataType).alias(f.name)
                                                                 for f in schema.fields])
    frame = spark.range(1).select(F.inline(F.array(*structs, nulls)))
    return frame.where(F.col(keep)).select(*[F.col(f.name) for f in schema.fields])
