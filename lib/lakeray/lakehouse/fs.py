"""A few file operations on configured locations: local paths with the standard library, URIs
(s3a://, abfss://, hdfs://, file://) through the Hadoop FileSystem of a Spark session."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from lakeray.errors import ConfigError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(path: str) -> bool:
    return bool(_URI.match(path))


def arrow_filesystem(path: str):
    """(pyarrow FileSystem, path in it) for a local path or a URI Arrow knows (s3://, gs://, hdfs://...):
    what Ray's own storage_path accepts, so no Spark session is needed."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path if is_uri(path) else os.path.abspath(path))


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *[p.strip("/") for p in parts[1:]]])


def hadoop_path(path: str, spark):
    if spark is None:
        raise ConfigError(f"{path} is not a local path: reaching it needs Spark's Hadoop filesystem (run as a Spark job)")
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(path: str, spark=None) -> bool:
    if not is_uri(path):
        return os.path.lexists(path)
    fs, hpath = hadoop_path(path, spark)
    return bool(fs.exists(hpath))


def is_dir(path: str, spark=None) -> bool:
    if not is_uri(path):
        return Path(path).is_dir()
    fs, hpath = hadoop_path(path, spark)
    return bool(fs.exists(hpath) and fs.getFileStatus(hpath).isDirectory())


def listdir(path: str, spark=None) -> list[str]:
    """Names in a folder; [] when it does not exist."""
    if not is_uri(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    fs, hpath = hadoop_path(path, spark)
    if not fs.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hpath))


def read_text(path: str, spark=None) -> str | None:
    """A small text file's content, or None when it does not exist."""
    if not is_uri(path):
        return Path(path).read_text() if os.path.isfile(path) else None
    fs, hpath = hadoop_path(path, spark)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        return bytes(stream.readAllBytes()).decode()
    finally:
        stream.close()


def write_text(path: str, text: str, spark=None) -> None:
    """Write a small text file, replacing it atomically where the filesystem allows."""
    if not is_uri(path):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
        return
    fs, hpath = hadoop_path(path, spark)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode()))
    finally:
        out.close()


def delete(path: str, spark=None) -> None:
    """Remove a file or a folder with everything in it (a symbolic link itself, never its target)."""
    if not is_uri(path):
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
        return
    fs, hpath = hadoop_path(path, spark)
    fs.delete(hpath, True)
