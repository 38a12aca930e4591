"""Cluster launcher YAMLs, KubeRay manifests and the Dockerfile, checked offline."""

import functools
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timezone
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
KUBE_YAMLS = sorted(p.name for p in CLUSTER.glob("*.yaml") if p.name not in LAUNCHER_YAMLS)
# A reference to the project's image with a tag, with or without a registry: "textcnn:0.1.0",
# "registry.example.com/textcnn:0.1.0", "123456789012.dkr.ecr.us-east-1.amazonaws.com/textcnn:0.1.0".
IMAGE_REF = re.compile(r"[\w.\-/]*\btextcnn:[\w][\w.\-]*")
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


def image_env() -> str:
    return re.search(r"^TEXTCNN_IMAGE=(\S+)$", (CLUSTER / "image.env").read_text(), re.M).group(1)


@functools.cache
def rendered(name: str, image: str | None = None) -> str:
    """A manifest as cluster/render.sh prints it for kubectl (the image from image.env, or image)."""
    env = {k: v for k, v in os.environ.items() if k != "TEXTCNN_IMAGE"} | ({"TEXTCNN_IMAGE": image} if image else {})
    return subprocess.run(["sh", str(CLUSTER / "render.sh"), str(CLUSTER / name)], env=env, capture_output=True,
                          text=True, check=True).stdout


def kube_docs():
    for name in KUBE_YAMLS:
        for doc in yaml.safe_load_all(rendered(name)):
            if doc:
                yield name, doc


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
    assert rayjob["metadata"]["generateName"] == "textcnn-score-2026-11-29-" and "name" not in rayjob["metadata"]
    assert rayjob["metadata"]["labels"]["textcnn/run-date"] == "2026-11-29"


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


# ---- one image name per manifest set -------------------------------------------------------


def test_the_kubernetes_manifests_name_the_image_once_in_image_env():
    kube = {name: (CLUSTER / name).read_text() for name in KUBE_YAMLS + ["image.env", "render.sh"]}
    refs = {name: IMAGE_REF.findall(text) for name, text in kube.items()}
    assert {name: r for name, r in refs.items() if r} == {"image.env": [image_env()]}
    for name in KUBE_YAMLS:
        assert "${TEXTCNN_IMAGE}" not in rendered(name) and "textcnn" in rendered(name), name
    # every container but the CronJob's kubectl runs the project's image, as render.sh sets it
    images = [c["image"] for _, doc in kube_docs() for c in _containers(doc)]
    assert set(images) - {image_env()} == {_kubectl_image()}
    other = "other.example.com/team/textcnn:9.9.9"
    assert other in rendered("cronjob-score.yaml", other) and image_env() not in rendered("raycluster.yaml", other)
    template = rendered("cronjob-score.yaml", other).split("rayjob.yaml: |", 1)[1]
    assert template.count(f"image: {other}") == 2            # the nightly RayJob's head and workers


@pytest.mark.parametrize("name", LAUNCHER_YAMLS + ["../docker/Dockerfile"])
def test_each_launcher_yaml_names_its_image_once_and_the_dockerfile_none(name):
    refs = IMAGE_REF.findall((CLUSTER / name).read_text())
    assert len(refs) == (0 if name.endswith("Dockerfile") else 1), refs


def test_the_docker_image_can_score_onnx_models():
    install = re.search(r"pip install [^\n]*", (ROOT / "docker" / "Dockerfile").read_text()).group()
    extras = set(re.search(r"\.\[([\w,]+)\]", install).group(1).split(","))
    assert {"export", "plots"} <= extras


def _containers(doc):
    """Every container of a manifest, wherever its pod templates sit (template strings excluded)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("containers", "initContainers"):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _containers(item)


# ---- the nightly CronJob's script ----------------------------------------------------------


def _cronjob():
    return next(d for name, d in kube_docs() if name == "cronjob-score.yaml" and d["kind"] == "CronJob")


def _submit_container():
    pod = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "submit")


def _kubectl_image() -> str:
    return _submit_container()["image"]


def test_the_cronjob_runs_a_maintained_kubectl_image():
    image = _kubectl_image()
    assert "bitnami" not in image           # bitnami/kubectl's versioned tags are gone (Sept 2025)
    assert re.fullmatch(r"registry\.k8s\.io/kubectl:v1\.\d+\.\d+", image), image


FAKE_KUBECTL = """#!/bin/sh
# A fake kubectl: `create -o name -f -` keeps the manifest and prints a generated name; `get NAME -o
# jsonpath=...` prints the next line of $FAKE_STATUSES (the last one again once they run out).
echo "$*" >> "$FAKE_DIR/calls"
case "$1" in
  create) cat > "$FAKE_DIR/created.yaml"; echo "rayjob.ray.io/textcnn-score-$(date -u +%Y-%m-%d)-x7k2p" ;;
  get)
    n=$(cat "$FAKE_DIR/polls" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/polls"
    line=$(printf '%s\\n' "$FAKE_STATUSES" | sed -n "${n}p")
    [ -n "$line" ] || line=$(printf '%s\\n' "$FAKE_STATUSES" | tail -n 1)
    [ "$line" = ERROR ] && { echo "error: the server is unavailable" >&2; exit 1; }
    printf '%s' "$line" ;;
  *) exit 3 ;;
esac
"""


def _run_nightly(tmp_path, statuses: list[str], wait_seconds: int = 20,
                 kubectl: str = FAKE_KUBECTL) -> tuple[subprocess.CompletedProcess, Path]:
    """The CronJob's own shell script, as its container runs it, against a fake kubectl on PATH."""
    container = _submit_container()
    assert container["command"] == ["/bin/sh", "-c"]
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(kubectl)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    template = next(d for name, d in kube_docs() if name == "cronjob-score.yaml" and d["kind"] == "ConfigMap")
    (tmp_path / "rayjob.yaml").write_text(template["data"]["rayjob.yaml"])
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
           "TEMPLATE": str(tmp_path / "rayjob.yaml"), "FAKE_STATUSES": "\n".join(statuses),
           "POLL_SECONDS": "0", "WAIT_SECONDS": str(wait_seconds)}
    defaults = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) & set(defaults) == {"POLL_SECONDS", "WAIT_SECONDS"}
    proc = subprocess.run(["/bin/sh", "-c", container["args"][0]], env=env, capture_output=True, text=True, timeout=60)
    return proc, tmp_path


@pytest.mark.parametrize("statuses, code", [
    (["/Initializing", "PENDING/Running", "RUNNING/Running", "SUCCEEDED/Running"], 0),
    (["/Initializing", "RUNNING/Running", "SUCCEEDED/Complete"], 0),
    (["RUNNING/Running", "FAILED/Running"], 1),
    (["RUNNING/Running", "FAILED/Complete"], 1),
    (["RUNNING/Running", "STOPPED/Complete"], 1),
    (["/Initializing", "/Failed"], 1),                      # submission failed, activeDeadlineSeconds exceeded
    (["PENDING/Complete"], 1),                              # the submitter Job failed
    (["ERROR", "RUNNING/Running", "ERROR", "SUCCEEDED/Complete"], 0),   # the API server briefly away
])
def test_the_nightly_script_exits_with_the_rayjobs_outcome(tmp_path, statuses, code):
    proc, fake = _run_nightly(tmp_path, statuses)
    assert proc.returncode == code, proc.stdout + proc.stderr
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    created = yaml.safe_load((fake / "created.yaml").read_text())
    validate(created, K8S_SCHEMAS / "rayjob-ray-v1.json")
    assert created["metadata"]["generateName"] == f"textcnn-score-{today}-"
    assert f"--date {today}" in created["spec"]["entrypoint"]
    polls = [c for c in (fake / "calls").read_text().splitlines() if c.startswith("get")]
    assert polls[0].startswith(f"get rayjob.ray.io/textcnn-score-{today}-x7k2p -o jsonpath=")
    assert len(polls) == len(statuses)                      # it stopped at the first terminal state
    if code:
        assert "failed" in proc.stderr


def test_the_nightly_script_gives_up_after_its_deadline(tmp_path):
    proc, _ = _run_nightly(tmp_path, ["RUNNING/Running"], wait_seconds=0)
    assert proc.returncode == 1 and "no end after 0 s (status RUNNING/Running)" in proc.stderr


def test_the_nightly_script_fails_when_the_rayjob_cannot_be_created(tmp_path):
    refusing = "#!/bin/sh\ncat > /dev/null; echo 'error: forbidden' >&2; exit 1\n"
    proc, _ = _run_nightly(tmp_path, ["SUCCEEDED/Complete"], kubectl=refusing)
    assert proc.returncode != 0 and "forbidden" in proc.stderr and "created" not in proc.stdout
