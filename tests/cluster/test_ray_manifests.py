"""Ray cluster definitions (KubeRay manifests, the `ray up` config, the image's Dockerfile), checked
against the repository without a cluster: versions agree with requirements.txt, every job script,
pipeline and profile they name exists, and the settings the cluster profile needs are supplied."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "cluster" / "kuberay"
RAYCLUSTER = KUBERAY / "raycluster.yaml"
RAYJOB = KUBERAY / "rayjob-train.yaml"
CONFIG = KUBERAY / "config.yaml"
LAUNCHER = ROOT / "cluster" / "ray" / "cluster-launcher.yaml"
DOCKERFILE = ROOT / "cluster" / "docker" / "Dockerfile"
README = KUBERAY / "README.md"
POLICY = KUBERAY / "networkpolicy.yaml"
MANIFESTS = [CONFIG, RAYCLUSTER, RAYJOB, POLICY]
TEXTS = [RAYCLUSTER, RAYJOB, CONFIG, LAUNCHER, DOCKERFILE, README]

# The job entry points lakeray has (or is getting): jobs/<name>.py.
JOB_NAMES = {"ingest", "prepare", "tune", "train", "evaluate"}
MLFLOW_VAR = "LAKERAY_MLFLOW_URI"
GPU = "nvidia.com/gpu"

_JOB_CALL = re.compile(r"\bpython3?\s+(?:\S*/)?jobs/([A-Za-z0-9_.-]+)\.py\b")
_PIPELINE_ARG = re.compile(r"--pipeline[=\s]+([^\s\"'\\]+)")
_ENV_ARG = re.compile(r"--env[=\s]+([A-Za-z0-9_-]+)(?![\w=])")   # a profile, not docker's --env K=V


# ---------------------------------------------------------------- helpers

def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _one(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one {kind}, found {len(found)}"
    return found[0]


def _ray_pin() -> str:
    pins = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^ray(?:\[[^\]]*\])?==([0-9][\w.]*)\s*(?:#.*)?$", line.strip())
        if m:
            pins.append(m.group(1))
    assert len(pins) == 1, f"requirements.txt: expected one ray[...]==X pin, found {pins}"
    return pins[0]


def _python_tag() -> str:
    """py311 from setup.py's python_requires lower bound (>=3.11)."""
    m = re.search(r"python_requires\s*=\s*[\"']>=\s*(\d+)\.(\d+)", (ROOT / "setup.py").read_text())
    assert m, "setup.py: no python_requires='>=X.Y'"
    return f"py{m.group(1)}{m.group(2)}"


def _image(image: str) -> dict:
    """Split rayproject/ray:<ray>-<py>[-gpu] or <registry>/lakeray:<version>-ray<ray>-<py>[-gpu]."""
    name, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"image {image!r} has no tag"
    if name == "rayproject/ray":
        m = re.fullmatch(r"(?P<ray>\d+\.\d+\.\d+)-(?P<py>py\d+)(?P<gpu>-gpu)?", tag)
    elif name.rsplit("/", 1)[-1] == "lakeray":
        m = re.fullmatch(r"[\w.]+-ray(?P<ray>\d+\.\d+\.\d+)-(?P<py>py\d+)(?P<gpu>-gpu)?", tag)
    else:
        pytest.fail(f"image {image!r} is neither rayproject/ray nor the lakeray image built from it")
    assert m, f"image {image!r}: tag not of the form <ray version>-py3XX[-gpu]"
    return {"ray": m.group("ray"), "py": m.group("py"), "gpu": bool(m.group("gpu"))}


def _cluster_specs() -> list[tuple[str, dict]]:
    return [("raycluster.yaml", _one(RAYCLUSTER, "RayCluster")["spec"]),
            ("rayjob-train.yaml rayClusterSpec", _one(RAYJOB, "RayJob")["spec"]["rayClusterSpec"])]


def _containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _ray_containers(spec: dict) -> list[tuple[str, dict]]:
    out = [("head", c) for c in _containers(spec["headGroupSpec"]["template"])]
    for group in spec["workerGroupSpecs"]:
        out += [(group["groupName"], c) for c in _containers(group["template"])]
    return out


def _all_k8s_containers() -> list[tuple[str, dict]]:
    out = []
    for label, spec in _cluster_specs():
        out += [(f"{label} {where}", c) for where, c in _ray_containers(spec)]
    submitter = _one(RAYJOB, "RayJob")["spec"].get("submitterPodTemplate")
    if submitter:
        out += [("rayjob-train.yaml submitter", c) for c in _containers(submitter)]
    return out


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _gpus(container: dict) -> int:
    res = container.get("resources", {})
    return int(res.get("limits", {}).get(GPU, 0))


def _launcher() -> dict:
    return yaml.safe_load(LAUNCHER.read_text())


def _run_options_env(cfg: dict) -> dict:
    env = {}
    for opt in cfg["docker"].get("run_options", []):
        m = re.fullmatch(r"(?:--env|-e)[=\s]+([A-Za-z_][A-Za-z0-9_]*)=(.*)", opt.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _dockerfile_from() -> str:
    args = {}
    for word, rest in _dockerfile():
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
        if word == "FROM":
            image = rest.split()[0]
            return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
    pytest.fail("Dockerfile has no FROM")


def _copy_sources() -> list[str]:
    sources = []
    for word, rest in _dockerfile():
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def _job_calls(text: str) -> list[tuple[str, list[str]]]:
    """(job name, its arguments) for each `python jobs/<name>.py ...`, shell continuations joined
    (also inside # comments)."""
    text = re.sub(r"\\\n[ \t]*(?:#[ \t]*)?", " ", text)
    return [(m.group(1), shlex.split(m.group(2)))
            for m in re.finditer(r"\bpython3?\s+(?:\S*/)?jobs/([A-Za-z0-9_-]+)\.py([^\n\"'`&|;]*)", text)]


def _entrypoint_steps() -> list[list[str]]:
    entry = _one(RAYJOB, "RayJob")["spec"]["entrypoint"]
    argv = shlex.split(entry)
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3, f"entrypoint is not bash -c '...': {entry!r}"
    return [shlex.split(step) for step in argv[2].split("&&")]


# ---------------------------------------------------------------- kinds, versions, images

def test_every_document_has_the_expected_kind():
    kinds = {p.name: [(d.get("apiVersion"), d.get("kind")) for d in _docs(p)] for p in MANIFESTS}
    assert kinds == {"config.yaml": [("v1", "ConfigMap")],
                     "raycluster.yaml": [("ray.io/v1", "RayCluster")],
                     "rayjob-train.yaml": [("ray.io/v1", "RayJob")],
                     "networkpolicy.yaml": [("networking.k8s.io/v1", "NetworkPolicy")]}
    for path in MANIFESTS:
        for doc in _docs(path):
            meta = doc.get("metadata", {})
            assert meta.get("name") or meta.get("generateName"), f"{path.name}: {doc['kind']} has no name"


def test_ray_versions_match_the_requirements_pin():
    pin = _ray_pin()
    for label, spec in _cluster_specs():
        assert spec["rayVersion"] == pin, f"{label}: rayVersion {spec['rayVersion']} != ray=={pin}"
    images = [(label, c["image"]) for label, c in _all_k8s_containers()]
    cfg = _launcher()
    images.append(("cluster-launcher docker.image", cfg["docker"]["image"]))
    images += [(f"cluster-launcher {name}", t["docker"]["worker_image"])
               for name, t in cfg["available_node_types"].items() if "worker_image" in t.get("docker", {})]
    images.append(("Dockerfile FROM", _dockerfile_from()))
    py = _python_tag()
    for label, image in images:
        parsed = _image(image)
        assert parsed["ray"] == pin, f"{label}: image {image} is Ray {parsed['ray']}, requirements.txt pins {pin}"
        assert parsed["py"] == py, f"{label}: image {image} is {parsed['py']}, setup.py requires {py}"


def test_gpu_images_only_where_gpus_are():
    for label, spec in _cluster_specs():
        for where, c in _ray_containers(spec):
            assert _image(c["image"])["gpu"] == (_gpus(c) > 0), \
                f"{label} {where}: image {c['image']} vs {GPU} limit {_gpus(c)}"
    assert not _image(_dockerfile_from())["gpu"], "the Dockerfile's default base is the CPU image"


# ---------------------------------------------------------------- what the commands name exists

@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_job_script_named_exists(path):
    names = set(_JOB_CALL.findall(path.read_text()))
    unknown = names - JOB_NAMES
    assert not unknown, f"{path.relative_to(ROOT)} runs jobs lakeray does not have: {sorted(unknown)}"
    missing = sorted(n for n in names if not (ROOT / "jobs" / f"{n}.py").is_file())
    assert not missing, f"{path.relative_to(ROOT)} runs {[f'jobs/{n}.py' for n in missing]}, not in jobs/"


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_pipeline_and_profile_named_exists(path):
    from lakeray.spec import load_spec

    text = path.read_text()
    for pipeline in set(_PIPELINE_ARG.findall(text)):
        assert (ROOT / pipeline).is_file(), f"{path.relative_to(ROOT)}: --pipeline {pipeline} does not exist"
        load_spec(ROOT / pipeline)   # and it is a valid spec
    for env in set(_ENV_ARG.findall(text)):
        assert (ROOT / "conf" / env / "lakeray.yaml").is_file(), \
            f"{path.relative_to(ROOT)}: --env {env} has no conf/{env}/lakeray.yaml"


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_job_command_line_is_accepted_by_the_cli(path):
    """jobs/<name>.py hands its arguments to `lakeray <name>`: the same parser must take them."""
    from lakeray.cli import build_parser

    for name, args in _job_calls(path.read_text()):
        script = ROOT / "jobs" / f"{name}.py"
        if not script.is_file():
            continue   # reported by test_every_job_script_named_exists
        m = re.search(r"main\(\[\s*[\"'](\w+)[\"']", script.read_text())
        assert m, f"jobs/{name}.py does not call lakeray.cli.main([...])"
        try:
            build_parser().parse_args([m.group(1), *args])
        except SystemExit:
            pytest.fail(f"{path.relative_to(ROOT)}: `python jobs/{name}.py {shlex.join(args)}` is rejected by the CLI")


def test_rayjob_runs_tune_train_evaluate_in_order_from_the_image_code():
    steps = _entrypoint_steps()
    workdir = [rest for word, rest in _dockerfile() if word == "WORKDIR"][-1]
    if steps[0][0] == "cd":
        assert steps[0][1] == workdir, f"entrypoint cd {steps[0][1]}, the image's code is at {workdir}"
        steps = steps[1:]
    jobs = []
    for argv in steps:
        assert argv[0] in ("python", "python3") and argv[1].startswith("jobs/"), f"unexpected step {argv}"
        jobs.append(Path(argv[1]).stem)
        assert argv[argv.index("--env") + 1] == "cluster", f"{argv[1]} does not use the cluster profile"
        assert argv[argv.index("--pipeline") + 1] == "pipelines/churn.yaml"
    assert jobs == ["tune", "train", "evaluate"]
    assert "--gold-version" in steps[0]


# ---------------------------------------------------------------- cluster shape

@pytest.mark.parametrize("label,spec", _cluster_specs(), ids=["raycluster", "rayjob"])
def test_head_takes_no_work_and_keeps_the_dashboard_internal(label, spec):
    head = spec["headGroupSpec"]
    assert head["rayStartParams"].get("num-cpus") == "0", f"{label}: head must start with num-cpus '0'"
    assert head["rayStartParams"].get("dashboard-host") == "0.0.0.0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", f"{label}: the head Service must stay internal"
    assert spec.get("authOptions", {}).get("mode") == "token", f"{label}: Ray token auth must be on"
    ports = {p["containerPort"] for c in _containers(head["template"]) for p in c.get("ports", [])}
    assert 8265 in ports


@pytest.mark.parametrize("label,spec", _cluster_specs(), ids=["raycluster", "rayjob"])
def test_worker_groups_autoscale_and_one_group_has_gpus(label, spec):
    assert spec["enableInTreeAutoscaling"] is True
    groups = spec["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups)
    for g in [spec["headGroupSpec"], *groups]:
        assert all(isinstance(v, str) for v in g["rayStartParams"].values()), \
            f"{label}: rayStartParams values must be strings (map[string]string)"
    for g in groups:
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"], g["groupName"]
        for c in _containers(g["template"]):
            assert c["resources"]["limits"].get("cpu"), f"{label} {g['groupName']}: Ray sizes num-cpus from the CPU limit"
    gpu_groups = [g for g in groups if any(_gpus(c) for c in _containers(g["template"]))]
    assert len(gpu_groups) == 1, f"{label}: expected one GPU worker group"
    g = gpu_groups[0]
    limit = _gpus(_containers(g["template"])[0])
    assert limit == 1
    assert g["rayStartParams"].get("num-gpus") == str(limit), f"{label}: num-gpus must equal the {GPU} limit"
    assert g["minReplicas"] == 0, f"{label}: GPU nodes only on demand"
    cpu_groups = [x for x in groups if x is not g]
    assert cpu_groups and all("num-gpus" not in x["rayStartParams"] for x in cpu_groups)


def test_rayjob_cluster_matches_raycluster():
    def shape(spec):
        return ({k: v for k, v in spec["headGroupSpec"]["rayStartParams"].items()},
                {g["groupName"]: sorted(c["image"] for c in _containers(g["template"]))
                 for g in spec["workerGroupSpecs"]},
                sorted(c["image"] for c in _containers(spec["headGroupSpec"]["template"])))
    (_, full), (_, job) = _cluster_specs()
    assert shape(job) == shape(full)


def test_rayjob_cleans_up_and_is_bounded():
    spec = _one(RAYJOB, "RayJob")["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    for key in ("ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        assert isinstance(spec[key], int) and spec[key] > 0, key
    assert isinstance(spec["backoffLimit"], int) and spec["backoffLimit"] >= 0
    submitter = spec.get("submitterPodTemplate")
    if submitter:
        assert submitter["spec"].get("restartPolicy") == "Never"
        assert "command" not in submitter["spec"]["containers"][0], "the operator supplies ray job submit"


# ---------------------------------------------------------------- environment

def test_every_container_sets_omp_passive_and_the_cluster_profile():
    for label, c in _all_k8s_containers():
        env = _env(c)
        assert env.get("OMP_WAIT_POLICY") == "PASSIVE", f"{label} {c['name']}: OMP_WAIT_POLICY=PASSIVE missing"
        assert env.get("LAKERAY_ENV") == "cluster", f"{label} {c['name']}: LAKERAY_ENV=cluster missing"
    assert any(w == "ENV" and re.search(r"\bOMP_WAIT_POLICY=PASSIVE\b", r) for w, r in _dockerfile())


def test_ray_containers_load_the_config_map_and_optional_storage_secret():
    config_maps = {d["metadata"]["name"] for d in _docs(CONFIG) if d["kind"] == "ConfigMap"}
    for label, spec in _cluster_specs():
        for where, c in _ray_containers(spec):
            refs = c.get("envFrom", [])
            maps = {r["configMapRef"]["name"] for r in refs if "configMapRef" in r}
            secrets = {r["secretRef"]["name"]: r["secretRef"].get("optional") for r in refs if "secretRef" in r}
            assert maps == {"lakeray-config"} and maps <= config_maps, f"{label} {where}: {maps}"
            assert secrets == {"lakeray-storage": True}, f"{label} {where}: {secrets}"


_CLUSTER_CONF = ROOT / "conf" / "cluster" / "lakeray.yaml"
_NO_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _required_vars() -> set[str]:
    """Variables conf/cluster/lakeray.yaml uses without a default, plus the MLflow server."""
    return set(_NO_DEFAULT.findall(_CLUSTER_CONF.read_text())) | {MLFLOW_VAR}


def _path_vars() -> dict[str, str]:
    """paths.<key> of the cluster profile that are exactly ${VAR}: key -> VAR."""
    paths = yaml.safe_load(_CLUSTER_CONF.read_text())["paths"]
    return {k: m.group(1) for k, v in paths.items() if (m := _NO_DEFAULT.fullmatch(str(v)))}


@pytest.mark.parametrize("source", ["config.yaml", "cluster-launcher.yaml"])
def test_settings_supply_the_cluster_profile(source, monkeypatch):
    from lakeray.config import load_settings

    if source == "config.yaml":
        data = _one(CONFIG, "ConfigMap")["data"]
        assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    else:
        data = _run_options_env(_launcher())
    missing = _required_vars() - set(data)
    assert not missing, f"{source} does not set {sorted(missing)}"
    assert re.match(r"^https?://", data[MLFLOW_VAR]), f"{MLFLOW_VAR} must be the tracking server's URL"
    for key in list(os.environ):
        if key.startswith("LAKERAY_"):
            monkeypatch.delenv(key)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = load_settings("cluster", root=ROOT)
    for key, var in _path_vars().items():
        assert settings.path(key) == data[var], key
        # On Ray nodes these are read by deltalake and pyarrow (Ray Tune/Train storage);
        # pyarrow has no s3a:// filesystem.
        assert not data[var].startswith("s3a://"), f"{source}: use s3:// for {var} on Ray nodes"
    assert settings["mlflow"]["tracking_uri"] == data[MLFLOW_VAR]
    # Model bundles and reports are staged with pathlib (train/evaluate jobs), then logged to MLflow.
    if "models" in settings["paths"]:
        assert "://" not in settings["paths"]["models"], f"{source}: LAKERAY_MODELS must be a filesystem path"


# ---------------------------------------------------------------- ray up

def test_launcher_config_is_valid_for_ray():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _launcher()
    ray_dir = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    jsonschema.validate(cfg, json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text()))
    validate_config(prepare_config(cfg))   # Ray's own check, after merging its AWS defaults
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"]


def test_launcher_nodes_head_and_gpu():
    cfg = _launcher()
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must offer no CPUs"
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    gpu = [k for k, v in workers.items() if v["resources"].get("GPU")]
    assert len(gpu) == 1 and workers[gpu[0]]["resources"]["GPU"] == 1
    assert workers[gpu[0]]["min_workers"] == 0
    assert _image(workers[gpu[0]]["docker"]["worker_image"])["gpu"]
    assert not _image(cfg["docker"]["image"])["gpu"]
    assert sum(v.get("min_workers", 0) for v in workers.values()) <= cfg["max_workers"]


def test_launcher_starts_ray_with_omp_passive_and_token_auth():
    cfg = _launcher()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg[key] if "ray start" in c]
        assert starts, key
        for cmd in starts:
            assert "OMP_WAIT_POLICY=PASSIVE" in cmd, f"{key}: {cmd}"
            assert "RAY_AUTH_MODE=token" in cmd, f"{key}: {cmd}"
    head = [c for c in cfg["head_start_ray_commands"] if "ray start" in c]
    assert all("--head" in c and "--dashboard-host=0.0.0.0" in c for c in head)
    env = _run_options_env(cfg)
    assert env.get("OMP_WAIT_POLICY") == "PASSIVE" and env.get("RAY_AUTH_MODE") == "token"


def test_launcher_syncs_the_repository():
    cfg = _launcher()
    local = cfg["file_mounts"]["~/lakeray"]
    assert (ROOT / local).resolve() == ROOT, "file_mounts ~/lakeray must be the repository root (ray up from there)"
    assert any(".venv" in p for p in cfg.get("rsync_exclude", [])), "do not sync the virtualenv"


# ---------------------------------------------------------------- the image

def test_dockerfile_installs_requirements_then_the_package_without_deps():
    runs = [rest for word, rest in _dockerfile() if word == "RUN"]
    req = [i for i, r in enumerate(runs) if re.search(r"pip install\b.*-r requirements\.txt", r)]
    pkg = [i for i, r in enumerate(runs) if re.search(r"pip install\b.*--no-deps\s+\.(\s|$)", r)]
    assert req and pkg and req[0] < pkg[0], runs
    assert not any(re.search(r"\b(openjdk|default-jre|java)\b", r) for r in runs), "Ray nodes need no JVM"


def test_dockerfile_copies_what_setup_py_and_the_jobs_read():
    sources = _copy_sources()
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    setup = (ROOT / "setup.py").read_text()
    needed = set(re.findall(r"HERE\s*/\s*\"([^\"]+)\"", setup)) | set(re.findall(r"_requirements\(\"([^\"]+)\"\)", setup))
    needed |= {"setup.py", "lib/lakeray/__init__.py", "conf/base/lakeray.yaml", "conf/cluster/lakeray.yaml"}
    for argv in _entrypoint_steps():
        needed |= {a for a in argv if a.startswith(("jobs/", "pipelines/"))}
    for path in sorted(needed):
        covered = any(path == s.rstrip("/").removeprefix("./") or path.startswith(s.rstrip("/").removeprefix("./") + "/")
                      for s in sources)
        assert covered, f"the image lacks {path} (no COPY covers it)"


def test_the_network_policy_opens_only_serves_port_of_this_ray_cluster():
    """The cluster profile binds Serve to 0.0.0.0: the policy must select this RayCluster's pods and
    let outsiders reach only the port Serve listens on (the cluster profile's and serve-config's)."""
    policy = _one(POLICY, "NetworkPolicy")["spec"]
    cluster = _one(RAYCLUSTER, "RayCluster")
    assert policy["podSelector"]["matchLabels"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert policy["policyTypes"] == ["Ingress"]
    own, outside = policy["ingress"]
    assert own["from"] == [{"podSelector": {"matchLabels": {"ray.io/cluster": cluster["metadata"]["name"]}}}]
    assert "ports" not in own
    serve_port = yaml.safe_load((ROOT / "cluster" / "serve" / "serve-config.yaml").read_text())["http_options"]["port"]
    profile = {**yaml.safe_load((ROOT / "conf" / "base" / "lakeray.yaml").read_text())["serve"],
               **yaml.safe_load((ROOT / "conf" / "cluster" / "lakeray.yaml").read_text())["serve"]}
    assert profile["host"] == "0.0.0.0" and profile["require_api_key"] is True
    assert [p["port"] for p in outside["ports"]] == [serve_port] == [int(profile["port"])]
    head_ports = {p["name"]: p["containerPort"] for p in cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert head_ports["serve"] == serve_port


def test_ray_pods_get_the_serve_switches_lakeray_serve_sets(monkeypatch):
    """Every Ray container of the RayCluster carries what `lakeray serve` hands the Serve controller for
    the cluster profile (HAProxy ingress, retries on another replica, drain), and starts HAProxy through
    lakeray's launcher at the path the image links it to."""
    from lakeray.serve.ingress import LAUNCHER as HAPROXY_LAUNCHER
    from lakeray.serve.ingress import controller_env

    for name in [n for n in os.environ if n.startswith("RAY_SERVE_")]:
        monkeypatch.delenv(name)
    profile = {**yaml.safe_load((ROOT / "conf" / "base" / "lakeray.yaml").read_text())["serve"],
               **yaml.safe_load((ROOT / "conf" / "cluster" / "lakeray.yaml").read_text())["serve"]}
    expected = controller_env(profile)
    assert expected["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    spec = _one(RAYCLUSTER, "RayCluster")["spec"]
    for where, container in _ray_containers(spec):
        env = _env(container)
        assert {k: env.get(k) for k in expected} == expected, where
        launcher = env.get("RAY_SERVE_HAPROXY_BINARY_PATH") or ""
        assert launcher.startswith("/app/") and launcher.endswith(f"/{HAPROXY_LAUNCHER}"), where
    link = launcher.removeprefix("/app/")                       # the image's WORKDIR is /app
    assert ("WORKDIR", "/app") in _dockerfile()
    assert any(w == "RUN" and f'ln -s "$(command -v {HAPROXY_LAUNCHER})" {link}' in r and f"test -x {link}" in r
               for w, r in _dockerfile()), "the Dockerfile does not link the launcher where the pods look for it"
