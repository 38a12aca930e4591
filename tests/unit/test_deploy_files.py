"""Cluster launcher YAMLs, KubeRay manifests and the Dockerfile, checked offline."""

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

CLUSTER = ROOT / "cluster"
K8S_SCHEMAS = ROOT / "tests" / "data" / "k8s-schemas"     # KubeRay v1.7.0's, shipped (NOTICE)
LAUNCHER_YAMLS = ["local.yaml", "aws.yaml"]
KUBE_KINDS = {"RayCluster": "raycluster", "RayJob": "rayjob", "RayCronJob": "raycronjob"}


def pinned_ray_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', text).group(1)


@functools.cache
def _validator(schema_file: Path):
    """A validator of the schema as it stands: checking these vendored schemas against the
    metaschema, as jsonschema.validate does on every call, took 7 s of this file's 10."""
    schema = json.loads(schema_file.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def validate(doc, schema_file: Path) -> None:
    _validator(schema_file).validate(doc)


def kube_docs():
    for path in sorted(CLUSTER.glob("*.yaml")):
        if path.name not in LAUNCHER_YAMLS:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    yield path.name, doc


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_yaml_matches_rays_own_schema(name):
    validate(yaml.safe_load((CLUSTER / name).read_text()), Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")


def test_aws_yaml_has_a_cpu_head_and_gpu_workers_from_zero():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu)


def test_kuberay_manifests_match_the_crd_schemas():
    seen = set()
    for name, doc in kube_docs():
        kind = doc["kind"]
        if kind in KUBE_KINDS:
            validate(doc, K8S_SCHEMAS / f"{KUBE_KINDS[kind]}-ray-v1.json")
            seen.add(kind)
        assert doc["apiVersion"] and doc["metadata"]["name"], name
    assert {"RayCluster", "RayJob"} <= seen


def test_raycluster_has_a_gpu_worker_group():
    docs = [d for _, d in kube_docs() if d["kind"] == "RayCluster"]
    groups = [g for d in docs for g in d["spec"]["workerGroupSpecs"]]
    limits = [c["resources"]["limits"] for g in groups for c in g["template"]["spec"]["containers"]]
    assert any(int(lim.get("nvidia.com/gpu", 0)) >= 1 for lim in limits)


@pytest.mark.parametrize("path", sorted(p.name for p in CLUSTER.glob("*.yaml")) + ["../docker/Dockerfile"])
def test_every_deploy_file_names_the_pinned_ray_version(path):
    text = (CLUSTER / path).read_text()
    versions = set(re.findall(r"(?:ray:|rayVersion: \"|Ray )(\d+\.\d+\.\d+)", text))
    assert versions == {pinned_ray_version()}, f"{path}: {versions}"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_builds_on_the_official_gpu_image_as_non_root():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(pinned_ray_version())}-py311-gpu$", text, re.M)
    assert "ray-ml" not in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0")


def test_nightly_cronjob_forbids_overlap_and_its_rayjob_template_is_valid():
    docs = [d for name, d in kube_docs() if name == "cronjob-score.yaml"]
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    template = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["rayjob.yaml"]
    rayjob = yaml.safe_load(template.replace("RUN_DATE", "2026-11-29"))
    validate(rayjob, K8S_SCHEMAS / "rayjob-ray-v1.json")
    assert "jobs/score.py" in rayjob["spec"]["entrypoint"]
    assert "run_date=2026-11-29" in rayjob["spec"]["entrypoint"]


def _score_args(command: str) -> list[str]:
    return shlex.split(command.split("jobs/score.py", 1)[1].split(">>")[0])


def test_nightly_entrypoints_pass_the_date_and_parse_with_the_real_cli():
    from textcnn.cli import score_cmd
    docs = [d for name, d in kube_docs() if name == "cronjob-score.yaml"]
    template = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["rayjob.yaml"]
    entry = yaml.safe_load(template.replace("RUN_DATE", "2026-11-29"))["spec"]["entrypoint"]
    cron_line = next(line for line in (ROOT / "cluster" / "nightly.crontab").read_text().splitlines()
                     if line.startswith("0 2 * * *"))
    cron_line = re.sub(r"\$\(date [^)]*\)", "2026-11-29", cron_line)
    for args in (_score_args(entry), _score_args(cron_line)):
        params = score_cmd.make_context("score", args).params
        assert params["run_date"] == "2026-11-29" and params["output"].rstrip("/") == "s3://textcnn-scores"
