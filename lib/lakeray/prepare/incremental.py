"""Incremental prepare: re-stage only the keys that new bronze rows touch, and MERGE.

A run continues from the last one when that run finished ok and nothing moved since (its state, in
the run-metrics table: the bronze versions it read and the silver, gold and quarantine versions it
left, with the spec's hash and lakeray's version). Otherwise run.py recomputes everything. Per source:

  new rows  the rows appended to bronze after the version the last run read (Delta's change data
            feed; bronze is append-only: file drops append, the JDBC MERGE only inserts)
  K         the keys of the new rows
  R         K, plus for a source with `unique` rules the keys whose verdict the change can move: silver
            rows sharing a unique value with a new row or with an old row of K, and every row held in
            quarantine by a unique rule (the clash may be gone)

R is re-staged (restage.py): a source without `unique` rules or `deletes` from silver's rows of R and
the new rows alone (no bronze read); the others from every bronze row of R (the dedupe sees the key's
whole history; `unique` also counts the silver rows outside R). Silver gets one MERGE: the keys of R
without a clean row are deleted, changed rows updated, new ones inserted (or one append when none of R
was in silver, or a rewrite of the table when the changed rows are spread over its files: _rewrites). Gold: the entities whose base
row is in R or whose join values appear in an old or new row of R are rebuilt from the new silver
and written back (a MERGE on the entity key, or the whole table once the rebuilt entities outnumber
gold's files: see _update_gold). The quarantine: one MERGE adds the new rows it holds and, for a source
re-staged from bronze (and the rebuilt entities), replaces the rows of R's keys. The tables then hold
what a full recompute writes; tests/prepare/test_incremental.py checks that row for row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeray.config import Settings
from lakeray.lakehouse import (
    Lakehouse,
    TableVersion,
    commit_actions,
    latest_version,
    read_version,
    table_files,
    table_id,
    write_table,
)
from lakeray.lakehouse.merge import checkpointed, merge_rows, replace_rows
from lakeray.lineage import code_version, lineage
from lakeray.prepare.as_of import entities_reached
from lakeray.prepare.dataset import build_dataset
from lakeray.prepare.dedupe import classify
from lakeray.prepare.limits import check_limits
from lakeray.prepare.quarantine import key_json
from lakeray.prepare.restage import (
    OLD,
    bronze_rows,
    changed_clean,
    from_silver,
    from_silver_ok,
    outside_rows,
    rows_of_keys,
    ties,
    touched_keys,
)
from lakeray.prepare.split import PARTS, SPLIT, column_type, split_column
from lakeray.prepare.steps import (
    GOLD,
    Accounting,
    PrepareResult,
    Timer,
    account,
    bronze_bytes,
    clean_rows,
    each_source,
    finish,
    gold_clean_rows,
    gold_stage,
    parallel_sources,
    rejected_rows,
    split_failures,
)
from lakeray.prepare.validate import validate_rows
from lakeray.runs import append_run_metrics, last_note, metric_row
from lakeray.spark.conf import runtime_conf
from lakeray.spark.local import local_frame
from lakeray.spec import spec_hash
from lakeray.spec.models import PipelineSpec, Source

log = logging.getLogger(__name__)
STATE = "incremental_state"     # in the details of an ok run's metric rows
# the quarantine rows a run replaces: (source, key as JSON)
REPLACED = T.StructType([T.StructField("source", T.StringType()), T.StructField("key", T.StringType())])


def _state(spark, lake: Lakehouse, spec: PipelineSpec, bronze: dict[str, int], silver: dict[str, TableVersion],
           gold: TableVersion, quarantine: TableVersion) -> dict:
    return {"spec_hash": spec_hash(spec), "code_version": code_version(), "bronze": dict(bronze),
            "bronze_ids": {n: table_id(spark, lake.bronze(n)) for n in bronze},
            "silver": {n: t.version for n, t in silver.items()}, "gold": gold.version, "quarantine": quarantine.version}


def record_run(spark, spec: PipelineSpec, lake: Lakehouse, run_id: str, mode: str, accounting: dict[str, Accounting],
               bronze_versions: dict[str, int], silver: dict[str, TableVersion], gold: TableVersion | None,
               quarantine: TableVersion, split_rows: dict[str, int], failures: list[str]) -> None:
    """One run-metrics row per table; an ok run also records the state the next run continues from."""
    ok = not failures and gold is not None
    state = {STATE: _state(spark, lake, spec, bronze_versions, silver, gold, quarantine)} if ok else {}
    status = "ok" if not failures else "failed"
    note = {"stage": "prepare", "run_id": run_id, "status": status, **state}   # what previous_run reads
    append_run_metrics(spark, lake.run_metrics, [
        metric_row(run_id, "prepare", a.table, rows_in=a.rows_in, clean=a.clean, quarantined=a.quarantined,
                   duplicates=a.duplicates, deleted=a.deleted, status=status,
                   details={"mode": mode, "quarantine_by_rule": a.quarantine_by_rule,
                            "bronze_version": bronze_versions.get(n),
                            **({"split_rows": split_rows} if n == GOLD and split_rows else {}),
                            "output_version": (silver[n].version if n in silver else gold.version if n == GOLD and gold else None),
                            **state})
        for n, a in accounting.items()
    ], note=note)


def gold_problem(spec: PipelineSpec) -> str | None:
    """Why gold cannot be updated per entity (None when it can)."""
    base = spec.dataset.base
    if list(spec.sources[base].keys) != [spec.entity_key]:
        return f"the base source's keys {spec.sources[base].keys} are not [entity_key]"
    sources = [j.source for j in spec.dataset.joins]
    if base in sources or len(set(sources)) != len(sources):
        return "a source is joined twice (or onto itself)"
    columns = set(spec.sources[base].columns)
    for join in spec.dataset.joins:
        if not set(join.on) <= columns:
            return f"join '{join.source}' is on columns the base source does not have ({join.on})"
    return None


def previous_run(spark, lake: Lakehouse, spec: PipelineSpec, bronze_now: dict[str, int]) -> tuple[dict | None, str]:
    """The state the last prepare run left, when this run can continue from it; else (None, why not)."""
    problem = gold_problem(spec)
    if problem:
        return None, f"gold is rebuilt whole: {problem}"
    last, known = last_note(spark, lake.run_metrics, "prepare")
    if not known:       # the log cannot say: ask the table
        row = (spark.read.format("delta").load(lake.run_metrics).where(F.col("stage") == "prepare")
               .orderBy(F.col("recorded_at").desc()).select("run_id", "status", "details").first())
        last = row and {"run_id": row["run_id"], "status": row["status"],
                        STATE: json.loads(row["details"] or "{}").get(STATE)}
    if last is None:
        return None, "no earlier run"
    state = last.get(STATE)
    if last["status"] != "ok" or not state:
        return None, f"the last run ({last['run_id']}) did not finish ok"
    if state["spec_hash"] != spec_hash(spec):
        return None, "the pipeline spec changed since the last run"
    if state["code_version"] != code_version():
        return None, f"lakeray's version changed since the last run ({state['code_version']} -> {code_version()})"
    if set(state["bronze"]) != set(spec.sources):
        return None, "the spec's sources changed since the last run"
    tables = {**{f"silver/{n}": (lake.silver(n), v) for n, v in state["silver"].items()},
              "gold": (lake.gold, state["gold"]), "quarantine": (lake.quarantine, state["quarantine"])}
    for label, (path, version) in tables.items():
        if latest_version(spark, path) != version:
            return None, f"{label} is not at the version the last run left (v{version})"
    for name, version in state["bronze"].items():
        current = table_id(spark, lake.bronze(name))
        if current is None or current != state["bronze_ids"].get(name) or bronze_now[name] < version:
            return None, f"bronze/{name} is not the table the last run read (was it reset?)"
    return state, ""


def added_rows(spark, path: str, since: int, until: int) -> tuple[DataFrame, int] | None:
    """The rows appended to a bronze table after version `since` up to `until`, from Delta's change data
    feed, and the bytes of their files; None when the feed cannot say (not enabled then, the log was
    cleaned, or a commit removed rows)."""
    added = 0
    for version in range(since + 1, until + 1):
        actions = commit_actions(spark, path, version)
        if actions is None:
            return None
        for action in actions:
            if "cdc" in action or ("remove" in action and action["remove"].get("dataChange", True)):
                return None
            added += int(action.get("add", {}).get("size", 0))
    try:
        feed = (spark.read.format("delta").option("readChangeFeed", "true")
                .option("startingVersion", since + 1).option("endingVersion", until).load(path))
        # load() is lazy: a range the feed did not record fails only when the scan is planned, so plan
        # it here (no Spark job) rather than in the middle of the run
        feed._jdf.queryExecution().executedPlan()
    except Exception as exc:  # noqa: BLE001 - Delta refuses a range without the feed (several error classes)
        log.info("no change data feed for %s v%d..v%d: %s", path, since + 1, until, str(exc).splitlines()[0])
        return None
    return feed.where(F.col("_change_type") == "insert").drop("_change_type", "_commit_version", "_commit_timestamp"), added


def _entities(spec: PipelineSpec, keys_r: dict[str, DataFrame], old_rows: dict[str, DataFrame],
              new_rows: dict[str, DataFrame], base_new: DataFrame) -> DataFrame:
    """The entities whose gold row can change: base keys in R, and base rows whose join values appear in
    an old or a new row of the joined source's R (sources that did not change are not in the dicts); for
    an as-of join, only the base rows whose cutoff such a row's event time counts for."""
    key = spec.entity_key
    frames = [keys_r[spec.dataset.base].select(key)] if spec.dataset.base in keys_r else []
    values: dict[tuple, list[DataFrame]] = {}       # joins on the same columns share one pass over the base
    for join in spec.dataset.joins:
        if join.source in new_rows and join.as_of is not None:
            frames.append(entities_reached(join, old_rows[join.source], new_rows[join.source], base_new, key))
        elif join.source in new_rows:
            values.setdefault(tuple(join.on), []).extend(
                [old_rows[join.source].select(*join.on), new_rows[join.source].select(*join.on)])
    for on, parts in values.items():
        found = reduce(DataFrame.unionByName, parts)
        # joined on the entity key itself: the values are the entities (one without a base row rebuilds
        # to nothing: no gold row, no quarantine row, before or after)
        frames.append(found if list(on) == [key] else base_new.join(found.distinct(), list(on), "left_semi").select(key))
    return reduce(DataFrame.unionByName, frames).distinct()


def _costs_less_in_full(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, added: int) -> str | None:
    """Why a full recompute is the cheaper run (None: go incremental). An incremental run costs some
    hundred small Spark jobs whatever the data (benchmarks/README.md): below a size, or when much of
    bronze is new, recomputing everything is faster."""
    conf = settings.get("prepare", {})
    min_mb = float(conf.get("incremental_min_bronze_mb", 1024))
    max_change = float(conf.get("incremental_max_change", 0.1))
    total = bronze_bytes(spark, lake, spec)
    if total < min_mb * 2**20:
        return (f"bronze holds {total / 2**20:.0f} MB, under prepare.incremental_min_bronze_mb = {min_mb:g}: "
                "recomputing costs less")
    if added > max_change * total:
        return (f"{added / 2**20:.0f} MB of {total / 2**20:.0f} MB in bronze are new, over "
                f"prepare.incremental_max_change = {max_change:g}: recomputing costs less")
    return None


def run_incremental(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, run_id: str,
                    bronze_versions: dict[str, int], previous: dict) -> PrepareResult:
    from lakeray.prepare.run import _run_full  # the fallback (run.py imports this module)

    phase = Timer()
    # the sources whose bronze moved; the others keep their silver as it is (no Spark job at all)
    changed = [n for n in spec.sources if bronze_versions[n] != previous["bronze"][n]]
    workers = parallel_sources(settings)
    frames, added = {}, 0
    # planning each change-feed scan is driver work (about 1 s per source): side by side
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare-feed") as pool:
        feeds = {n: pool.submit(added_rows, spark, lake.bronze(n), previous["bronze"][n], bronze_versions[n])
                 for n in changed}
    for name in changed:
        found = feeds[name].result()
        if found is None:
            log.info("prepare %s: full recompute (bronze/%s has no change data feed for v%d..v%d)", run_id, name,
                     previous["bronze"][name] + 1, bronze_versions[name])
            return _run_full(spark, spec, settings, lake, run_id, bronze_versions)
        frames[name], size = found
        added += size
    why = _costs_less_in_full(spark, spec, settings, lake, added) if changed else None
    if why:
        log.info("prepare %s: full recompute (%s)", run_id, why)
        return _run_full(spark, spec, settings, lake, run_id, bronze_versions)
    log.info("prepare %s: incremental from bronze %s; changed: %s", run_id, json.dumps(previous["bronze"]),
             ", ".join(changed) or "nothing")
    with runtime_conf(spark, _session_settings(settings)):
        return _stage_and_write(spark, spec, settings, lake, run_id, bronze_versions, previous, frames, workers, phase)


def _session_settings(settings: Settings) -> dict[str, str]:
    """What an incremental run changes in the session while it runs (prepare.incremental_adaptive): its
    queries are small and their small sides carry broadcast hints, and adaptive execution would run each
    query stage as a job of its own and re-plan after each (benchmarks/README.md)."""
    if settings.get("prepare", {}).get("incremental_adaptive", False):
        return {}
    return {"spark.sql.adaptive.enabled": "false"}


def _stage_and_write(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, run_id: str,
                     bronze_versions: dict[str, int], previous: dict, frames: dict[str, DataFrame], workers: int,
                     phase: Timer) -> PrepareResult:
    """Re-stages R per changed source (`frames`: their new bronze rows), then the writes (_write)."""
    silver_old = {n: read_version(spark, lake.silver(n), v) for n, v in previous["silver"].items()}
    quarantine_old = read_version(spark, lake.quarantine, previous["quarantine"])
    staged: dict[str, DataFrame] = {}
    keys_r: dict[str, DataFrame] = {}

    new: dict[str, DataFrame] = {}

    old: dict[str, DataFrame] = {}      # silver's rows of R's keys before the run
    from_bronze_too: set[str] = set()   # the sources re-staged from bronze (their quarantine rows are replaced)

    def stage(name: str, source: Source) -> Accounting:
        if name not in frames:
            return Accounting(name, 0, 0, 0, 0, {})
        keys = list(source.keys)
        new[name] = checkpointed(validate_rows(frames[name], source))
        keys_r[name] = checkpointed(touched_keys(name, source, new[name], silver_old[name], quarantine_old))
        old[name] = checkpointed(rows_of_keys(silver_old[name], keys_r[name], keys))
        use_silver = from_silver_ok(source)
        if use_silver and not ties(new[name], old[name], source).isEmpty():
            log.info("prepare %s: a new row ties with silver's row of its key on every order column; "
                     "re-staging %s from bronze", run_id, name)
            use_silver = False
        if use_silver:
            staged[name] = checkpointed(from_silver(new[name], old[name], source))
            fresh, how = ~F.col(OLD), "new rows + silver's rows of their keys"
        else:
            bronze = read_version(spark, lake.bronze(name), bronze_versions[name])
            rows = checkpointed(bronze_rows(bronze, new[name], source, keys_r[name]))    # one bronze pass
            staged[name] = checkpointed(classify(rows, source, outside_rows(silver_old[name], keys_r[name], rows, source)))
            batches = [r[0] for r in new[name].select("_batch_id").distinct().collect()]
            fresh, how = F.col("_batch_id").isin(batches), "every bronze row of the touched keys"
            from_bronze_too.add(name)
        acct, _ = account(name, None, staged[name], new=fresh)
        log.info("prepare %s (re-staged: %s)", acct.line(), how)
        return acct

    accounting = each_source(spec, stage, workers)      # local checkpoints: Spark's cleaner frees them
    phase("stage + account touched keys")
    return _write(spark, spec, settings, lake, run_id, bronze_versions, previous,
                  Restaged(staged, keys_r, old, from_bronze_too), accounting, silver_old, phase, workers)


@dataclasses.dataclass
class Restaged:
    """What staging left for the writes (the changed sources only)."""
    staged: dict[str, DataFrame]    # classified rows (checkpointed)
    keys_r: dict[str, DataFrame]    # R per source (checkpointed)
    old: dict[str, DataFrame]       # silver's rows of R before the run (checkpointed)
    from_bronze: set[str]           # re-staged from bronze: their quarantine rows of R are replaced


@dataclasses.dataclass
class GoldRebuild:
    entities: DataFrame         # the entity keys rebuilt (checkpointed)
    staged: DataFrame           # their gold rows, staged and classified (checkpointed)
    rows: DataFrame | None      # the clean rows of those entities (None when a limit failed)
    after: DataFrame | None     # gold as the update leaves it: the other entities' rows and `rows`
    split_rows: dict[str, int]  # rows per split of gold as the MERGE leaves it
    failures: list[str]


def _rebuild_gold(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, previous: dict,
                  keys_r: dict[str, DataFrame], old_rows: dict[str, DataFrame], new_rows: dict[str, DataFrame],
                  silver_after: dict[str, DataFrame], accounting: dict[str, Accounting]) -> GoldRebuild:
    """Gold for the entities the change reaches, from silver as the MERGEs leave it; accounts it (into
    `accounting`) and checks the limits and the split of gold as its MERGE would leave it."""
    key = spec.entity_key
    entities = checkpointed(_entities(spec, keys_r, old_rows, new_rows, silver_after[spec.dataset.base]))
    # computed once, small and of known size: the joins below broadcast it instead of shuffling silver
    base_rows = checkpointed(silver_after[spec.dataset.base].join(entities, key, "left_semi"))
    inputs = {spec.dataset.base: base_rows}
    for join in spec.dataset.joins:
        inputs[join.source] = silver_after[join.source].join(base_rows.select(*join.on).distinct(), list(join.on),
                                                             "left_semi")
    joined = build_dataset(inputs, spec)
    staged = checkpointed(gold_stage(joined, spec))
    split_of = split_column(spec.split, key, column_type(staged, spec.split))
    accounting[GOLD], _ = account(GOLD, None, staged, split_of)
    log.info("prepare %s (rebuilt entities)", accounting[GOLD].line())
    failures = check_limits(spec, settings, {GOLD: accounting[GOLD]}, lake)
    if failures:
        return GoldRebuild(entities, staged, None, None, {}, failures)
    rows = gold_clean_rows(staged, joined, spec)
    kept = read_version(spark, lake.gold, previous["gold"]).join(entities, key, "left_anti")
    after = kept.unionByName(rows)       # the gold the MERGE would leave, checked first
    counts = {r[SPLIT]: r["n"] for r in after.groupBy(SPLIT).agg(F.count(F.lit(1)).alias("n")).collect()}
    split_rows = {part: counts.get(part, 0) for part in PARTS}
    return GoldRebuild(entities, staged, rows, after, split_rows,
                       split_failures(split_rows, staged, spec, settings, clean=after))


def _outside_r(silver_old: DataFrame, keys_r: DataFrame, held: int, source: Source) -> DataFrame:
    """Silver's rows outside R; all of them, with no join, when silver held no row of R (`held` = 0:
    new keys)."""
    return silver_old.join(keys_r, list(source.keys), "left_anti") if held else silver_old


def _rewrites(spark, settings: Settings, path: str, changed: int) -> bool:
    """Whether writing the table whole costs less than a MERGE of `changed` rows (conf's
    prepare.rewrite_rows_per_file)."""
    per_file = float(settings.get("prepare", {}).get("rewrite_rows_per_file", 3))
    return changed >= per_file * table_files(spark, path)


def _update_gold(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, gold: GoldRebuild, entities: int,
                 inputs: dict) -> TableVersion:
    """One commit. Rebuilt entities are spread over every file of gold (it is ordered by split, not by
    key), so once they are several per file (_rewrites) a MERGE would rewrite nearly all of them anyway,
    after a pass to find them and a shuffle join of gold against its source: gold is then written whole
    from the rows the rebuild already has (the other entities' rows read once, and the rebuilt ones).
    Fewer entities: MERGE on the entity key, which rewrites only the files they are in. Silver is
    treated alike (merge_silver in _write)."""
    key = spec.entity_key
    if _rewrites(spark, settings, lake.gold, entities):
        log.info("gold: %d rebuilt entities, rewriting the table", entities)
        return write_table(gold.after, lake.gold, partition_by=[SPLIT], stats_columns=[key], lineage=inputs)
    gone = gold.entities.join(gold.rows.select(key), key, "left_anti")
    return merge_rows(spark, lake.gold, gold.rows, gone, [key], lineage=inputs)


def _write(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, run_id: str, bronze_versions: dict[str, int],
           previous: dict, restaged: Restaged, accounting: dict[str, Accounting], silver_old: dict[str, DataFrame],
           phase: Timer, workers: int) -> PrepareResult:
    """The silver MERGEs (one per changed source, in threads) while gold is rebuilt for the touched
    entities from silver as those MERGEs leave it; then the gold and quarantine MERGEs side by side."""
    key = spec.entity_key
    staged, keys_r = restaged.staged, restaged.keys_r
    changed = [n for n in spec.sources if n in staged]
    # a source re-staged from silver quarantines its new rows only (no older row's verdict moves)
    rejected_of = {n: rejected_rows(staged[n], n, run_id, spec.sources[n].keys) for n in changed}
    quarantined = list(rejected_of.values())
    replaced = [keys_r[n].select(F.lit(n).alias("source"), key_json(spec.sources[n].keys).alias("key"))
                for n in changed if n in restaged.from_bronze]
    failures = check_limits(spec, settings, accounting, lake, rejected_of)
    silver = {n: TableVersion(lake.silver(n), v) for n, v in previous["silver"].items()}
    gold_version = TableVersion(lake.gold, previous["gold"]) if not changed else None
    split_rows: dict[str, int] = {}
    merged = bool(changed and not failures)
    if merged:
        new_rows = {n: clean_rows(staged[n], spec.sources[n]) for n in changed}
        old_rows = restaged.old
        held = {n: old_rows[n].count() for n in changed}     # silver's rows of R (each a small checkpoint)

        def merge_silver(name: str) -> TableVersion:
            keys = list(spec.sources[name].keys)
            gone = old_rows[name].select(*keys).join(new_rows[name].select(*keys), keys, "left_anti")
            # silver's own rows that stay are left out of the MERGE's source (nothing to write for them)
            rows = clean_rows(changed_clean(staged[name]), spec.sources[name])
            inputs = lineage(run_id, spec, {f"bronze/{name}": bronze_versions[name]})
            if not held[name]:
                # no touched key is in silver (e.g. new events): every clean row is new, so an append
                # does what the MERGE would, without joining the whole table against them
                if rows.isEmpty():
                    return TableVersion(lake.silver(name), previous["silver"][name])
                return write_table(rows, lake.silver(name), mode="append", lineage=inputs)
            if _rewrites(spark, settings, lake.silver(name), held[name]):
                log.info("silver/%s: the changed keys are spread over its files, rewriting the table", name)
                return write_table(silver_after[name], lake.silver(name), lineage=inputs)
            return merge_rows(spark, lake.silver(name), rows, gone, keys, lineage=inputs)

        # silver as the MERGEs will leave it (the old rows outside R, and R's clean rows): gold is rebuilt
        # from it while the MERGEs run, instead of waiting for them and reading the new versions
        silver_after = {n: (_outside_r(silver_old[n], keys_r[n], held[n], spec.sources[n]).unionByName(new_rows[n])
                            if n in changed else silver_old[n]) for n in spec.sources}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare-merge") as pool:
            merges = {n: pool.submit(merge_silver, n) for n in changed}
            gold = _rebuild_gold(spark, spec, settings, lake, previous, keys_r, old_rows, new_rows, silver_after,
                                 accounting)
            keys_r[GOLD], staged[GOLD] = gold.entities, gold.staged
            phase("gold rebuilt for touched entities")
            quarantined.append(rejected_rows(gold.staged, GOLD, run_id, [key]))
            replaced.append(gold.entities.select(F.lit(GOLD).alias("source"), key_json([key]).alias("key")))
            failures, split_rows = gold.failures, gold.split_rows
            silver.update({n: merge.result() for n, merge in merges.items()})
        phase("silver merged")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare-merge") as pool:   # two tables at once
        gold_merged = None
        if merged and not failures:
            gold_merged = pool.submit(_update_gold, spark, spec, settings, lake, gold, accounting[GOLD].rows_in, lineage(
                run_id, spec, {f"silver/{n}": t.version for n, t in silver.items()}))
        qversion = TableVersion(lake.quarantine, previous["quarantine"])
        if changed:
            qversion = replace_rows(spark, lake.quarantine, reduce(DataFrame.unionByName, quarantined),
                                    reduce(DataFrame.unionByName, replaced, local_frame(spark, [], REPLACED)),
                                    ["source", "key"], lineage=lineage(
                                        run_id, spec, {f"bronze/{n}": v for n, v in bronze_versions.items()}))
        if gold_merged is not None:
            gold_version = gold_merged.result()
    phase("gold and quarantine merged")
    record_run(spark, spec, lake, run_id, "incremental", accounting, bronze_versions, silver, gold_version, qversion,
               split_rows, failures)
    phase("run metrics written")
    return finish(run_id, failures, accounting, bronze_versions, silver if merged or not failures else {},
                  gold_version, qversion, "incremental")
