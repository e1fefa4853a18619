"""deploy/: the compose drop-in, the Kubernetes manifest and the BentoCloud config name the
right things (what can be checked without Docker or a cluster; `make image-test` runs the
compose file's healthcheck inside the image)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.support.bento_server import ROOT

DEPLOY = ROOT / "deploy"
#: The user BentoML's Dockerfile makes (bentoml, uid and gid 1034); tests/image checks it.
IMAGE_UID = 1034


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_replaces_immichs_machine_learning_service():
    services = compose()["services"]
    ours = services["immich-machine-learning"]  # the name Immich's server calls on port 3003
    assert ours["container_name"] == "immich_machine_learning"
    assert ours["image"].startswith("immich-cn-ml:")
    assert ours["restart"] == "always"
    assert "model-cache:/cache" in ours["volumes"]
    assert ours["env_file"] == [".env"]
    assert "ports" not in ours and "IMMICH_CN_ML_PORT" not in ours["environment"]  # 3003 inside the network
    test = ours["healthcheck"]["test"]
    assert test[0] == "CMD" and "http://127.0.0.1:3003/ping" in test[-1]
    # the stock server stays, as the upstream
    stock = services["immich-machine-learning-stock"]
    assert stock["image"].startswith("ghcr.io/immich-app/immich-machine-learning:")
    assert ours["environment"]["IMMICH_CN_ML_UPSTREAM_URL"] == "http://immich-machine-learning-stock:3003"
    assert set(compose()["volumes"]) == {"model-cache", "model-cache-stock"}


def test_kubernetes_runs_one_pod_with_a_service_on_3003():
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    assert set(documents) == {"PersistentVolumeClaim", "Deployment", "Service"}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 3003}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/ping"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "models", "mountPath": "/cache"} in container["volumeMounts"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # By number: the image's USER is a name, which the kubelet cannot check is not root.
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert documents["Deployment"]["spec"]["replicas"] == 1
    [port] = documents["Service"]["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (3003, "http")
    assert documents["Service"]["spec"]["selector"] == documents["Deployment"]["spec"]["selector"]["matchLabels"]


def test_bentocloud_has_one_entry_per_service_of_the_split_layout():
    config = yaml.safe_load((DEPLOY / "bentocloud.yaml").read_text())
    assert {"name": "IMMICH_CN_ML_RUNNERS", "value": "split"} in config["envs"]
    # The names the split layout gives its services (read in a process of its own: the layout
    # is chosen when the service module is imported).
    names = subprocess.run(
        [sys.executable, "-c", "from runners.services import RUNNERS; print(' '.join(s.name for s in RUNNERS.values()))"],
        cwd=ROOT, env={**os.environ, "IMMICH_CN_ML_RUNNERS": "split"},
        capture_output=True, text=True, timeout=120,
    )
    assert names.returncode == 0, names.stderr
    assert set(config["services"]) == {"immich-cn-ml", *names.stdout.split()}
    for service in config["services"].values():
        assert service["instance_type"]
        assert 1 <= service["scaling"]["min_replicas"] <= service["scaling"]["max_replicas"]


def test_the_cuda_compose_variant_reserves_the_gpu_for_the_cuda_image():
    variant = yaml.safe_load((DEPLOY / "docker-compose.cuda.yml").read_text())
    assert set(variant["services"]) == {"immich-machine-learning"}  # merged over docker-compose.yml
    ours = variant["services"]["immich-machine-learning"]
    assert ours["image"].endswith("-cuda")
    [device] = ours["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    makefile = (ROOT / "Makefile").read_text()
    assert f"IMAGE_CUDA ?= {ours['image']}" in makefile  # the tag `make image-cuda` builds


# --- the split layout across containers and pods (issue 20) ---------------------------------

#: The runner service each family's container or pod serves, by the name the entry calls it at.
RUNNER_TARGETS = {"immich-cn-ml-clip": "runners.services:ClipRunner",
                  "immich-cn-ml-faces": "runners.services:FaceRunner",
                  "immich-cn-ml-ocr": "runners.services:OcrRunner"}
URL_SETTING = {"immich-cn-ml-clip": "IMMICH_CN_ML_RUNNER_URL__CLIP",
               "immich-cn-ml-faces": "IMMICH_CN_ML_RUNNER_URL__FACES",
               "immich-cn-ml-ocr": "IMMICH_CN_ML_RUNNER_URL__OCR"}


def test_the_runner_targets_are_runner_services():
    import runners.services

    for target in RUNNER_TARGETS.values():
        service = getattr(runners.services, target.split(":")[1])
        assert service.name in {"clip-runner", "face-runner", "ocr-runner"}


def test_split_compose_runs_each_family_in_a_container_of_the_one_image():
    split = yaml.safe_load((DEPLOY / "docker-compose.split.yml").read_text())
    services = split["services"]
    entry = services["immich-machine-learning"]
    assert set(services) == {"immich-machine-learning", *RUNNER_TARGETS}
    assert {service["image"] for service in services.values()} == {"${IMMICH_CN_ML_IMAGE:-immich-cn-ml:latest}"}
    assert entry["environment"]["IMMICH_CN_ML_RUNNERS"] == "split"
    assert "model-cache:/cache" in entry["volumes"]
    assert entry["networks"] == ["default", "runners"] and split["networks"]["runners"] == {"internal": True}
    for name, target in RUNNER_TARGETS.items():
        runner = services[name]
        assert entry["environment"][URL_SETTING[name]] == f"http://{name}:3003"
        assert runner["command"] == ["bentoml", "serve", target, "--port", "3003"]
        assert runner["volumes"] == ["model-cache:/cache:ro"]  # the same path as the entry's, read-only
        assert "ports" not in runner, "a runner takes pickled calls: never published"
        assert runner["networks"] == ["runners"], "only the entry shares a network with a runner"
        assert "/readyz" in runner["healthcheck"]["test"][-1] and runner["restart"] == "always"


def _split_manifests() -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "kubernetes.split.yaml").read_text()))


#: The Kubernetes version the manifests are validated against (autoscaling/v2 is GA since 1.23).
KUBERNETES = "1.30"


def test_kubernetes_manifests_are_valid_against_the_api_schemas():
    import kubernetes_validate

    for path in ("kubernetes.yaml", "kubernetes.split.yaml"):
        for document in yaml.safe_load_all((DEPLOY / path).read_text()):
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
    # The check can fail: a misspelt field is refused.
    broken = _split_manifests()[1]
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_kubernetes_split_has_a_deployment_service_and_autoscaler_per_runner_family():
    documents = {(doc["kind"], doc["metadata"]["name"]): doc for doc in _split_manifests()}
    entry = documents[("Deployment", "immich-machine-learning")]
    [entry_container] = entry["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in entry_container["env"]}
    assert env["IMMICH_CN_ML_RUNNERS"] == "split"
    assert ("Service", "immich-machine-learning") in documents  # what Immich's server calls
    [claim] = [doc for doc in documents.values() if doc["kind"] == "PersistentVolumeClaim"]
    for name, target in RUNNER_TARGETS.items():
        deployment, service = documents[("Deployment", name)], documents[("Service", name)]
        autoscaler = documents[("HorizontalPodAutoscaler", name)]
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == ["bentoml", "serve", target, "--port", "3003"]
        assert env[URL_SETTING[name]] == f"http://{name}:3003"
        assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID}
        assert {"name": "models", "mountPath": "/cache", "readOnly": True} in container["volumeMounts"]
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        [metric] = autoscaler["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"


def _gpu_variant(name: str) -> dict:
    """The Deployment ``name`` with its commented GPU variant lines in force."""
    text = (DEPLOY / "kubernetes.split.yaml").read_text()
    block = next(part for part in text.split("\n---\n") if f"name: {name}\n" in part and "kind: Deployment" in part)
    deployment = yaml.safe_load(block)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    lines = block.splitlines()
    for index, line in enumerate(lines):
        if "GPU variant" in line:
            variant = yaml.safe_load(lines[index + 1].strip().lstrip("#"))
            if "image" in variant:
                container["image"] = variant["image"]
            else:
                container["resources"].update(variant)
    return deployment


def test_the_clip_and_face_runners_have_a_gpu_variant():
    import kubernetes_validate

    for name in ("immich-cn-ml-clip", "immich-cn-ml-faces"):
        deployment = _gpu_variant(name)
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "immich-cn-ml:latest-cuda"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_only_the_entry_service_reaches_the_runners():
    # A runner's port unpickles what it is sent: the split manifest closes it to all but the entry.
    documents = {(doc["kind"], doc["metadata"]["name"]): doc for doc in _split_manifests()}
    [policy] = [doc for doc in documents.values() if doc["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    [expression] = spec["podSelector"]["matchExpressions"]
    assert expression["key"] == "app" and expression["operator"] == "In"
    runner_labels = {documents[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]["app"]
                     for name in RUNNER_TARGETS}
    assert set(expression["values"]) == runner_labels
    assert spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    entry_labels = documents[("Deployment", "immich-machine-learning")]["spec"]["template"]["metadata"]["labels"]
    assert rule["from"] == [{"podSelector": {"matchLabels": entry_labels}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 3003}]
    # The entry itself is not selected: Immich's server must still reach it.
    assert entry_labels["app"] not in expression["values"]
