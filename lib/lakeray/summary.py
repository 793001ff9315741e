"""The table a command ends with: what it read, what it wrote (at which Delta version), the
search's best, the model, its test metric, the champion and the report. Built from the stages'
return values (pure: no I/O)."""

from __future__ import annotations


def data_rows(data: dict) -> list[tuple[str, str]]:
    rows = []
    for r in (data.get("ingest") or {}).values():
        rows.append(("read", f"{r.source} ({r.format}): {r.rows_added:,} new row(s) -> bronze v{r.bronze_version}"))
    prepared = data.get("prepare")
    if prepared is not None:
        for acct in prepared.accounting.values():
            rows.append(("accounted", acct.line()))
        if prepared.gold is not None:
            rows.append(("wrote", f"gold {prepared.gold.path} @ v{prepared.gold.version}"))
        if prepared.quarantine is not None:
            quarantined = sum(a.quarantined for a in prepared.accounting.values())
            rows.append(("wrote", f"quarantine {prepared.quarantine.path} @ v{prepared.quarantine.version} "
                                  f"({quarantined:,} row(s) this run)"))
    return rows


def ml_rows(spec, ml: dict) -> list[tuple[str, str]]:
    metric, rows = spec.metric.primary, []
    if "tune" in ml:
        board = ml["tune"]["outcome"].leaderboard
        best = board[0]
        rows.append(("searched", f"{len(board)} trial(s) on gold v{ml['tune']['gold_version']}: best {best['family']} "
                                 f"{metric} {best['score']:.4f} on validation"))
    if "train" in ml:
        manifest = ml["train"]["manifest"]
        rows.append(("trained", f"{manifest['family']}, {manifest['rounds']} round(s) -> {ml['train']['bundle_dir']} "
                                f"(MLflow run {ml['train']['run_id']})"))
    if "evaluate" in ml:
        ev = ml["evaluate"]
        shown = ", ".join(f"{who} {ev['metrics'][who][metric]:.4f}" for who in ("candidate", "baseline", "champion")
                          if who in ev["metrics"])
        rows.append(("evaluated", f"{metric} on test: {shown}"))
        rows.append(("report", str(ev["report"])))
    return rows


def verdict_row(promoted_version, failed_checks: list[str], champion_version=None) -> tuple[str, str]:
    """The summary's last line: the version promoted, or why none was and what serves meanwhile."""
    if failed_checks:
        if champion_version is None:
            return ("champion", f"none yet: the candidate failed {', '.join(failed_checks)}")
        return ("champion", f"unchanged (version {champion_version}): the candidate failed {', '.join(failed_checks)}")
    return ("champion", "unchanged" if promoted_version is None else f"version {promoted_version}")


def drift_rows(outcome) -> list[tuple[str, str]]:
    """`lakeray drift`'s summary: the window, what drifted, the performance estimated from the scores
    and realised on the labels recorded (each against the champion's test value), the alert, the report."""
    rows = [("window", f"[{outcome.start}, {outcome.end}): {outcome.rows:,} row(s)"),
            ("drifted", ", ".join(outcome.drifted) or "none"),
            ("segments drifting", "; ".join(f"{k}: {', '.join(v)}" for k, v in outcome.segments_drifted.items()) or "none")]
    for kind, p, how in (("estimated", outcome.estimated, "from the scores, without labels"),
                         ("realised", outcome.performance, None)):
        if p and p.get("value") is not None:
            how = how or f"on {p['labelled_rows']:,} labelled row(s)"
            against = f", champion's test {p['reference']:.4f}" if p.get("reference") is not None else ""
            decayed = f"; decayed by {p['decay']:.4f} > {p['max_decay']}" if p.get("drifted") else ""
            rows.append((f"{kind} {p['metric']}", f"{p['value']:.4f} ({how}{against}{decayed})"))
    return rows + [("alerted", "yes" if outcome.alerted else "no"), ("report", str(outcome.report))]
