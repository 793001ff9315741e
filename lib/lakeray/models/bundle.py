"""A trained model as a folder: booster (UBJSON), fitted preprocessing and a manifest.

    model.ubj        the XGBoost booster (never pickled)
    features.json    the FeaturePipeline fitted on the training split
    target.json      the TargetEncoder
    manifest.json    family, params, lineage and the SHA-256 of each file above

Training, evaluation, batch scoring and serving all load the same folder through
`load_bundle`, which refuses a file whose checksum does not match the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.features.preprocess import FeaturePipeline, TargetEncoder
from lakeray.models.families import predict

log = logging.getLogger(__name__)
MODEL_FILE, FEATURES_FILE, TARGET_FILE, MANIFEST_FILE = "model.ubj", "features.json", "target.json", "manifest.json"
FORMAT = "lakeray.model_bundle/v1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class ModelBundle:
    booster: object
    features: FeaturePipeline
    target: TargetEncoder
    manifest: dict

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def threshold(self) -> float:
        """Binary tasks: the decision threshold chosen at training time (0.5 if none was)."""
        return float(self.manifest.get("threshold") or 0.5)

    def matrix(self, frame: pd.DataFrame):
        return self.features.transform(frame)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores for raw feature rows: the fitted preprocessing, then the booster."""
        return predict(self.booster, self.matrix(frame), self.task)

    def predict_rows(self, rows: list[dict]) -> np.ndarray:
        """Scores for rows given as dicts (serving: no DataFrame for a few rows); the same as
        predict_frame of their frame."""
        return predict(self.booster, self.features.transform_rows(rows), self.task)

    def importance(self) -> dict[str, float]:
        """Gain per input column (native: one per feature; one-hot columns keep their `name=value` label)."""
        names = self.features.output_columns
        raw = self.booster.get_score(importance_type="gain") if self.manifest.get("family") != "logistic" else {}
        out = {}
        for key, value in raw.items():
            index = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else None
            out[names[index] if index is not None and index < len(names) else key] = float(value)
        if not out and self.manifest.get("family") == "logistic":
            weights = np.asarray(json.loads(self.booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["weights"],
                                 dtype=float)
            out = {name: float(abs(w)) for name, w in zip(names, weights[: len(names)], strict=True)}
        return out

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / FEATURES_FILE).write_text(self.features.to_json())
        (folder / TARGET_FILE).write_text(self.target.to_json())
        checksums = {name: sha256_file(folder / name) for name in (MODEL_FILE, FEATURES_FILE, TARGET_FILE)}
        self.manifest = {**self.manifest, "format": FORMAT, "sha256": checksums}
        (folder / MANIFEST_FILE).write_text(json.dumps(self.manifest, indent=2, sort_keys=True, default=str))
        log.info("model bundle in %s (model sha256 %s)", folder, checksums[MODEL_FILE])
        return folder


def load_bundle(folder: str | Path, expected_model_sha256: str | None = None) -> ModelBundle:
    """Load and verify a bundle; `expected_model_sha256` (e.g. from the registry) is checked too."""
    import xgboost

    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        raise LakerayError(f"{folder} is not a lakeray model bundle: {MANIFEST_FILE} is missing")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise LakerayError(f"{manifest_path}: unknown bundle format {manifest.get('format')!r}, expected {FORMAT}")
    for name, wanted in manifest["sha256"].items():
        path = folder / name
        if not path.exists():
            raise LakerayError(f"{path}: missing from the model bundle")
        got = sha256_file(path)
        if got != wanted:
            raise LakerayError(f"{path}: SHA-256 {got} does not match the manifest ({wanted}); refusing to load")
    if expected_model_sha256 and manifest["sha256"][MODEL_FILE] != expected_model_sha256:
        raise LakerayError(f"{folder / MODEL_FILE}: SHA-256 {manifest['sha256'][MODEL_FILE]} is not the registered "
                           f"{expected_model_sha256}")
    booster = xgboost.Booster()
    booster.load_model(str(folder / MODEL_FILE))
    return ModelBundle(booster, FeaturePipeline.from_json((folder / FEATURES_FILE).read_text()),
                       TargetEncoder.from_json((folder / TARGET_FILE).read_text()), manifest)
