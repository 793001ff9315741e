"""SparkSession with Delta Lake, configured from conf/ (base + environment overlay).

Precedence: settings given by spark-submit (--master, --conf) win over conf/, which wins
over Spark's defaults. The JVM dependencies declared in cluster/jvm/pom.xml reach Spark as
local jars, as spark.jars.packages, or not at all (platform-provided), per `jvm.mode`.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from lakeray.config import Settings
from lakeray.errors import ConfigError

log = logging.getLogger(__name__)

_MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_DELTA_PROBE = "io.delta.tables.DeltaTable"


def _under_spark_submit() -> bool:
    """True when spark-submit started the JVM and then this Python process."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def jvm_dependencies(settings: Settings) -> list[str]:
    """Maven coordinates (group:artifact:version) declared in the pom named by `jvm.pom`."""
    pom = settings.root / settings["jvm"]["pom"]
    try:
        tree = ET.parse(pom)
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"{pom}: cannot read the JVM dependency list: {exc}") from exc
    coords = []
    for dep in tree.getroot().iterfind("m:dependencies/m:dependency", _MAVEN_NS):
        parts = [dep.findtext(f"m:{k}", namespaces=_MAVEN_NS) for k in ("groupId", "artifactId", "version")]
        coords.append(":".join(p.strip() for p in parts))
    return coords


def _local_jars(settings: Settings) -> list[str]:
    folder = Path(settings["jvm"]["jars_dir"])
    folder = folder if folder.is_absolute() else settings.root / folder
    jars = sorted(glob.glob(str(folder / "*.jar")))
    if not jars:
        raise ConfigError(
            f"no jars in {folder} (setting jvm.jars_dir): run `make install` "
            "(cluster/install.sh) to resolve cluster/jvm/pom.xml from Maven Central"
        )
    return jars


def dependency_conf(settings: Settings) -> dict[str, str]:
    mode = settings["jvm"].get("mode", "local_dir")
    if mode == "local_dir":
        return {"spark.jars": ",".join(_local_jars(settings))}
    if mode == "packages":
        return {"spark.jars.packages": ",".join(jvm_dependencies(settings))}
    if mode == "none":
        return {}
    raise ConfigError(f"setting jvm.mode is '{mode}'; expected local_dir, packages or none")


def spark_submit_args(settings: Settings) -> list[str]:
    """Arguments that put lakeray's JVM dependencies on a spark-submit command line."""
    conf = dependency_conf(settings)
    if "spark.jars" in conf:
        return ["--jars", conf["spark.jars"]]
    if "spark.jars.packages" in conf:
        return ["--packages", conf["spark.jars.packages"]]
    return []


def session_conf(settings: Settings, extra: dict | None = None) -> dict[str, str]:
    spark_settings = settings.get("spark", {})
    conf = {k: str(v) for k, v in (spark_settings.get("conf") or {}).items()}
    conf.update(dependency_conf(settings))
    conf.update({k: str(v) for k, v in (extra or {}).items()})
    return conf


def _submitted_conf() -> dict[str, str]:
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def build_spark(settings: Settings, app_name: str | None = None, extra_conf: dict | None = None):
    """Create (or return) the SparkSession for `settings`, with Delta Lake enabled."""
    from pyspark.sql import SparkSession

    conf = session_conf(settings, extra_conf)
    builder = SparkSession.builder.appName(app_name or settings["spark"].get("app_name", "lakeray"))
    if _under_spark_submit():
        submitted = _submitted_conf()
        conf = {k: v for k, v in conf.items() if k not in submitted}
        conf.pop("spark.jars", None)  # too late for the driver's classpath: spark-submit owns it
        conf.pop("spark.jars.packages", None)
    else:
        log4j = settings.get("log4j2")
        if log4j and "spark.driver.extraJavaOptions" not in conf:
            conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={settings.root / log4j}"
        if conf.get("spark.driver.bindAddress") == "127.0.0.1":
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        master = settings["spark"].get("master")
        if not master:
            raise ConfigError(
                f"setting spark.master is empty in env '{settings.env}': that profile expects spark-submit --master"
            )
        builder = builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    master = (_submitted_conf() if _under_spark_submit() else {"spark.master": settings["spark"].get("master")}).get(
        "spark.master") or ""
    if master.startswith("local"):
        # Python workers (the drift job's one-pass counts) run this interpreter and its packages, not
        # whichever python3 is first on PATH; a cluster sets PYSPARK_PYTHON / spark.pyspark.python itself
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    _check_delta(spark)
    log.info("spark %s, master %s, app %s", spark.version, spark.sparkContext.master, spark.sparkContext.appName)
    return spark


def _check_delta(spark) -> None:
    jvm = spark.sparkContext._jvm
    loader = jvm.Thread.currentThread().getContextClassLoader()
    try:
        jvm.java.lang.Class.forName(_DELTA_PROBE, False, loader)
    except Exception as exc:  # py4j wraps ClassNotFoundException
        raise ConfigError(
            "Delta Lake is not on the Spark driver's classpath. With spark-submit, pass "
            "`$(lakeray spark-args)` (the jars of cluster/jvm/pom.xml); otherwise run `make install`."
        ) from exc


def root_cause(exc: BaseException) -> str:
    """The innermost JVM exception's message (e.g. the JDBC driver's), else str(exc)."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    while java.getCause() is not None:
        java = java.getCause()
    return str(java.getMessage() or java.toString())
