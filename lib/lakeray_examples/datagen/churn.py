"""Deterministic multi-silo customer-churn data with known faults and a known ground truth.

Silos, as the pipeline spec pipelines/churn.yaml declares them:
  customers      CSV export of a CRM            landing/<name>/customers/*.csv
  subscriptions  billing table in PostgreSQL    billing.subscriptions (seeded by seed_postgres)
  tickets        support tickets, JSON lines    landing/<name>/tickets/*.json
  usage          daily usage drops, Parquet     landing/<name>/usage/*.parquet

Every fault sits on its own row (faults never overlap), so the expected quarantine,
dedupe and clean counts per source are exact; they are returned as `Truth.expected`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

REGION_SPELLINGS = {
    "north": ["north", "North", " NORTH", "N."], "south": ["south", "South ", "S."],
    "east": ["east", "East", "E."], "west": ["west", "WEST", "W."],
}
GENDER_SPELLINGS = {"female": ["female", "Female", "F", " f"], "male": ["male", "Male", "M", "m "]}
PLAN_SPELLINGS = {"basic": ["basic", "Basic"], "standard": ["standard", "Std", "STANDARD"], "premium": ["premium", "Prem", "Premium "]}
CONTRACT_SPELLINGS = {
    "month-to-month": ["month-to-month", "Month-to-month", "month to month", "M2M"],
    "one-year": ["one-year", "One year", "1yr"], "two-year": ["two-year", "Two year", "2yr"],
}
PAYMENTS = ["card", "bank transfer", "electronic check", "mailed check"]
TICKET_CATEGORIES = {"billing": ["billing", "Billing"], "technical": ["technical", "Tech", "TECHNICAL"], "account": ["account", "Account "]}
EPOCH = dt.datetime(2025, 1, 1)
CUSTOMER_COLUMNS = ["customer_id", "email", "gender", "senior_citizen", "region", "plan", "signup_date", "updated_at"]
# The world the data comes from. "shifted" is the same customers a while later, as the billing
# database sees them: a price rise, most customers moved to month-to-month, and churn that now
# follows price far more than contract (used by the demo's closed loop: drift, then retraining).
WORLDS = {
    "base": {"contract_p": [0.55, 0.25, 0.20], "price_factor": 1.0, "days_later": 0,
             "logit": {"month_to_month": 1.6, "monthly": 0.02}},
    "shifted": {"contract_p": [0.85, 0.10, 0.05], "price_factor": 1.3, "days_later": 60,
                "logit": {"month_to_month": 0.2, "monthly": 0.06}},
    # the same move of contracts and prices, but churn still follows them as in "base" (a shift of the
    # inputs only: P(churn | customer) unchanged; what label-free performance estimation assumes)
    "shifted_inputs": {"contract_p": [0.85, 0.10, 0.05], "price_factor": 1.3, "price_center": 1.0, "days_later": 60,
                       "logit": {"month_to_month": 1.6, "monthly": 0.02}},
}
SUBSCRIPTION_COLUMNS = [
    "customer_id", "contract", "payment_method", "monthly_charges", "total_charges",
    "tenure_months", "churned", "updated_at",
]


@dataclasses.dataclass
class Truth:
    """What the generator put in, for exact assertions."""

    expected: dict          # per source: rows_in, quarantined (by rule), duplicates, clean
    gold: dict              # rows_in, missing_target, clean
    churn_rate: float


@dataclasses.dataclass
class Generated:
    customers: pd.DataFrame         # raw text, as the CSV holds it (without malformed lines)
    customer_malformed: list[str]
    subscriptions: pd.DataFrame
    tickets: pd.DataFrame
    ticket_malformed: list[str]
    usage_drops: list[pd.DataFrame]
    truth: Truth


def _spell(rng, canonical: np.ndarray, spellings: dict) -> np.ndarray:
    out = canonical.astype(object).copy()
    for value, variants in spellings.items():
        idx = np.flatnonzero(canonical == value)
        out[idx] = rng.choice(variants, size=idx.size)
    return out


def _take(rng, pool: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n distinct items from pool; return (drawn, rest)."""
    n = min(n, pool.size)
    drawn = rng.choice(pool, size=n, replace=False)
    return np.sort(drawn), np.setdiff1d(pool, drawn)


def _ts(seconds: np.ndarray) -> np.ndarray:
    return (np.datetime64(EPOCH) + seconds.astype("timedelta64[s]")).astype("datetime64[s]")


def _fmt_ts(values: np.ndarray) -> np.ndarray:
    return np.char.replace(np.datetime_as_string(values, unit="s").astype(str), "T", " ")


def generate(n_customers: int = 5000, seed: int = 42, usage_days: int = 4, events_per_customer: float = 6.0,
             world: str = "base") -> Generated:
    """`world` picks WORLDS[world]; with the same seed, every world has the same customers, tickets
    draws and usage rates, so a later world differs only in what WORLDS changes."""
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r} (known: {', '.join(WORLDS)})")
    shape = WORLDS[world]
    rng = np.random.default_rng(seed)
    n = n_customers
    k = max(1, n // 200)  # size of each fault group
    ids = np.array([f"C{i:07d}" for i in range(n)], dtype=object)

    # ---- true entity attributes -------------------------------------------------------
    gender = rng.choice(["female", "male"], size=n)
    senior = (rng.random(n) < 0.16).astype(int)
    region = rng.choice(list(REGION_SPELLINGS), size=n)
    plan = rng.choice(list(PLAN_SPELLINGS), size=n, p=[0.4, 0.4, 0.2])
    signup = np.datetime64("2019-01-01") + rng.integers(0, 2000, size=n).astype("timedelta64[D]")
    updated = rng.integers(0, 86400 * 60, size=n) + 86400 * shape["days_later"]
    contract = rng.choice(list(CONTRACT_SPELLINGS), size=n, p=shape["contract_p"])
    tenure = rng.integers(1, 73, size=n)
    monthly = np.round((rng.uniform(18, 120, size=n) + (plan == "premium") * 15) * shape["price_factor"], 2)
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.0, size=n), 2)
    payment = rng.choice(PAYMENTS, size=n)
    n_tickets = rng.poisson(1.2, size=n)
    open_share = rng.random(n)
    minutes_rate = rng.gamma(4.0, 30.0, size=n)

    # ---- customers.csv ----------------------------------------------------------------
    cust = pd.DataFrame({
        "customer_id": ids,
        "email": np.array([f"user{i}@example.com" for i in range(n)], dtype=object),
        "gender": _spell(rng, gender, GENDER_SPELLINGS),
        "senior_citizen": senior.astype(str).astype(object),
        "region": _spell(rng, region, REGION_SPELLINGS),
        "plan": _spell(rng, plan, PLAN_SPELLINGS),
        "signup_date": np.datetime_as_string(signup, unit="D").astype(object),
        "updated_at": _fmt_ts(_ts(updated)).astype(object),
    })
    pool = np.arange(n)
    faults = {}
    for rule, size in [("type:senior_citizen", k), ("type:signup_date", k), ("not_null:customer_id", k),
                       ("allowed_values:gender", k), ("regex:email", k), ("unique:email", 2 * k)]:
        faults[rule], pool = _take(rng, pool, size)
    cust.loc[faults["type:senior_citizen"], "senior_citizen"] = "two"
    cust.loc[faults["type:signup_date"], "signup_date"] = "2023-02-30"
    cust.loc[faults["not_null:customer_id"], "customer_id"] = None
    cust.loc[faults["allowed_values:gender"], "gender"] = "unknown-gender"
    cust.loc[faults["regex:email"], "email"] = "not-an-email"
    pairs = faults["unique:email"]
    cust.loc[pairs[1::2], "email"] = cust.loc[pairs[0::2], "email"].to_numpy()
    null_region, _ = _take(rng, pool, k)
    cust.loc[null_region, "region"] = None  # filled with 'unknown' by the missing-value policy
    faulted_customers = np.concatenate(list(faults.values()))
    clean_pool = pool
    older, clean_pool2 = _take(rng, clean_pool, 2 * k)
    exact, _ = _take(rng, clean_pool2, k)
    older_rows = cust.loc[older].copy()
    older_rows["plan"] = "basic"
    older_rows["updated_at"] = _fmt_ts(_ts(updated[older] - 86400 * 30))
    customers = pd.concat([cust, older_rows, cust.loc[exact]], ignore_index=True)
    customers = customers.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    customer_malformed = [f"garbage line {i} from a broken export" for i in range(k)] + [
        f"C9{i:06d},extra@example.com,female,0,north,basic,2024-01-01,2024-01-01 00:00:00,unexpected,fields" for i in range(k)
    ]
    clean_customer_mask = np.ones(n, dtype=bool)
    clean_customer_mask[faulted_customers] = False
    cust_quarantine = {r: int(v.size) for r, v in faults.items()}
    cust_quarantine["malformed_record"] = len(customer_malformed)

    # ---- subscriptions (PostgreSQL) ---------------------------------------------------
    prospects, sub_pool = _take(rng, np.arange(n), k)  # leads that never subscribed: no label
    sub_faults = {}
    for rule, size in [("range:monthly_charges", k), ("missing:churned", k), ("range:tenure_months", k),
                       ("allowed_values:contract", k)]:
        sub_faults[rule], sub_pool = _take(rng, sub_pool, size)

    # ground truth label from the true attributes
    open_tickets = np.floor(n_tickets * open_share).astype(int)
    weights = shape["logit"]
    logit = (-1.6 + weights["month_to_month"] * (contract == "month-to-month") - 0.035 * tenure
             + weights["monthly"] * (monthly - 65 * shape.get("price_center", shape["price_factor"]))
             + 0.45 * open_tickets - 0.004 * (minutes_rate - 120) + 0.4 * senior)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))

    has_sub = np.setdiff1d(np.arange(n), prospects)
    subs = pd.DataFrame({
        "customer_id": ids[has_sub],
        "contract": _spell(rng, contract[has_sub], CONTRACT_SPELLINGS),
        "payment_method": payment[has_sub],
        "monthly_charges": monthly[has_sub],
        "total_charges": total[has_sub],
        "tenure_months": tenure[has_sub],
        "churned": churned[has_sub].astype(object),
        "updated_at": _ts(updated[has_sub] + 3600),
    })
    pos = {cid: i for i, cid in enumerate(subs["customer_id"])}
    row = lambda idx: [pos[c] for c in ids[idx]]  # noqa: E731
    subs.loc[row(sub_faults["range:monthly_charges"]), "monthly_charges"] = -10.0
    subs.loc[row(sub_faults["missing:churned"]), "churned"] = None
    subs.loc[row(sub_faults["range:tenure_months"]), "tenure_months"] = 999
    subs.loc[row(sub_faults["allowed_values:contract"]), "contract"] = "lifetime"
    sub_older, rest = _take(rng, sub_pool, 2 * k)
    sub_exact, _ = _take(rng, rest, k)
    older_subs = subs.loc[row(sub_older)].copy()
    older_subs["updated_at"] = older_subs["updated_at"] - np.timedelta64(40, "D")
    older_subs["contract"] = "month-to-month"
    subscriptions = pd.concat([subs, older_subs, subs.loc[row(sub_exact)]], ignore_index=True)
    subscriptions = subscriptions.sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    sub_faulted = np.concatenate(list(sub_faults.values()))

    # ---- tickets (JSON lines) ---------------------------------------------------------
    owners = np.repeat(np.arange(n), n_tickets)
    t = owners.size
    is_open = np.concatenate([np.arange(c) < np.floor(c * s) for c, s in zip(n_tickets, open_share, strict=True)]) if t else np.array([], bool)
    t_created = rng.integers(0, 86400 * 90, size=t)
    tickets = pd.DataFrame({
        "ticket_id": np.array([f"T{i:08d}" for i in range(t)], dtype=object),
        "customer_id": ids[owners],
        "created_at": _fmt_ts(_ts(t_created)).astype(object),
        "category": _spell(rng, rng.choice(list(TICKET_CATEGORIES), size=t), TICKET_CATEGORIES),
        "status": np.where(is_open, "open", "closed").astype(object),
        "satisfaction": rng.integers(1, 6, size=t).astype(object),
        "updated_at": _fmt_ts(_ts(t_created + 7200)).astype(object),
    })
    tickets.loc[rng.random(t) < 0.1, "satisfaction"] = None  # unanswered survey: kept as null
    kt = max(1, t // 200)
    tpool = np.arange(t)
    t_faults = {}
    for rule, size in [("range:satisfaction", kt), ("allowed_values:category", kt), ("not_null:customer_id", kt)]:
        t_faults[rule], tpool = _take(rng, tpool, size)
    tickets.loc[t_faults["range:satisfaction"], "satisfaction"] = 9
    tickets.loc[t_faults["allowed_values:category"], "category"] = "???"
    tickets.loc[t_faults["not_null:customer_id"], "customer_id"] = None
    t_exact, _ = _take(rng, tpool, kt)
    tickets_out = pd.concat([tickets, tickets.loc[t_exact]], ignore_index=True)
    ticket_malformed = ['{"ticket_id": "T-broken", "customer_id": ' for _ in range(kt)]

    # ---- usage (daily Parquet drops; some events re-delivered late) -------------------
    e = int(n * events_per_customer)
    e_owner = rng.integers(0, n, size=e)
    usage = pd.DataFrame({
        "event_id": np.array([f"E{i:010d}" for i in range(e)], dtype=object),
        "customer_id": ids[e_owner].copy(),
        "event_date": (np.datetime64("2025-01-01") + rng.integers(0, usage_days, size=e).astype("timedelta64[D]")).astype("datetime64[D]"),
        "minutes": np.round(rng.exponential(minutes_rate[e_owner] / events_per_customer * 2), 2),
        "data_gb": np.round(rng.exponential(0.8, size=e), 3),
        "sessions": rng.integers(1, 12, size=e).astype("int32"),
    })
    ke = max(1, e // 500)
    upool = np.arange(e)
    u_faults = {}
    for rule, size in [("range:minutes", ke), ("not_null:customer_id", ke)]:
        u_faults[rule], upool = _take(rng, upool, size)
    usage.loc[u_faults["range:minutes"], "minutes"] = -5.0
    usage.loc[u_faults["not_null:customer_id"], "customer_id"] = None
    u_exact, _ = _take(rng, upool, ke)
    day = (usage["event_date"] - np.datetime64("2025-01-01")).dt.days.to_numpy()
    drops = [usage[day == d].reset_index(drop=True) for d in range(usage_days)]
    redelivered = usage.loc[u_exact]
    drops[-1] = pd.concat([drops[-1], redelivered], ignore_index=True)  # late re-delivery

    # ---- truth ------------------------------------------------------------------------
    def summary(rows_in, quarantine, duplicates):
        q = sum(quarantine.values())
        return {"rows_in": int(rows_in), "quarantined": int(q), "quarantine_by_rule": quarantine,
                "duplicates": int(duplicates), "clean": int(rows_in - q - duplicates)}

    expected = {
        "customers": summary(len(customers) + len(customer_malformed), cust_quarantine, older.size + exact.size),
        "subscriptions": summary(len(subscriptions), {r: int(v.size) for r, v in sub_faults.items()},
                                 sub_older.size + sub_exact.size),
        "tickets": summary(len(tickets_out) + len(ticket_malformed),
                           {**{r: int(v.size) for r, v in t_faults.items()}, "malformed_record": len(ticket_malformed)},
                           t_exact.size),
        "usage": summary(e + ke, {r: int(v.size) for r, v in u_faults.items()}, ke),
    }
    labelled = np.ones(n, dtype=bool)
    labelled[prospects] = False
    labelled[sub_faulted] = False
    base = int(clean_customer_mask.sum())
    missing_target = int((clean_customer_mask & ~labelled).sum())
    truth = Truth(expected=expected, gold={"rows_in": base, "missing_target": missing_target,
                                           "clean": base - missing_target},
                  churn_rate=float(churned.mean()))
    return Generated(customers, customer_malformed, subscriptions, tickets_out, ticket_malformed, drops, truth)


def write_landing(gen: Generated, landing: Path) -> None:
    """Write the file silos (customers CSV, tickets JSON, usage Parquet drops) under `landing`."""
    landing = Path(landing)
    for sub in ("customers", "tickets", "usage"):
        (landing / sub).mkdir(parents=True, exist_ok=True)
    csv_path = landing / "customers" / "crm_export_0001.csv"
    gen.customers.to_csv(csv_path, index=False, columns=CUSTOMER_COLUMNS)
    with csv_path.open("a") as fh:
        fh.writelines(line + "\n" for line in gen.customer_malformed)
    json_path = landing / "tickets" / "tickets_0001.json"
    gen.tickets.to_json(json_path, orient="records", lines=True, date_format="iso")
    with json_path.open("a") as fh:
        fh.writelines(line + "\n" for line in gen.ticket_malformed)
    for i, drop in enumerate(gen.usage_drops):
        write_usage_drop(drop, landing / "usage" / f"usage_day_{i:04d}.parquet")
    (landing / "_truth.json").write_text(json.dumps(dataclasses.asdict(gen.truth), indent=2))
    log.info("wrote file silos under %s", landing)


USAGE_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("customer_id", pa.string()), ("event_date", pa.date32()),
    ("minutes", pa.float64()), ("data_gb", pa.float64()), ("sessions", pa.int32()),
])


def write_usage_drop(frame: pd.DataFrame, path: Path) -> None:
    """One incremental usage drop, written atomically (temp name, then rename)."""
    table = pa.Table.from_pandas(frame, schema=USAGE_SCHEMA, preserve_index=False)
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.rename(path)


SUBSCRIPTIONS_DDL = """
CREATE SCHEMA IF NOT EXISTS billing;
DROP TABLE IF EXISTS billing.subscriptions;
CREATE TABLE billing.subscriptions (
    customer_id     text,
    contract        text,
    payment_method  text,
    monthly_charges double precision,
    total_charges   double precision,
    tenure_months   integer,
    churned         boolean,
    updated_at      timestamp
);
"""


def seed_postgres(frame: pd.DataFrame, conninfo: str) -> int:
    """(Re)create billing.subscriptions and load `frame` with COPY. Returns the row count."""
    import psycopg

    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(SUBSCRIPTIONS_DDL)
        with cur.copy(f"COPY billing.subscriptions ({', '.join(SUBSCRIPTION_COLUMNS)}) FROM STDIN") as copy:
            for rec in frame[SUBSCRIPTION_COLUMNS].itertuples(index=False, name=None):
                copy.write_row([None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in rec])
        cur.execute("SELECT count(*) FROM billing.subscriptions")
        return cur.fetchone()[0]
