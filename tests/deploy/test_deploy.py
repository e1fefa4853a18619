"""deploy/: the compose drop-in, the Kubernetes manifest and the BentoCloud config name the
right things (what can be checked without Docker or a cluster; `make image-test` runs the
compose file's healthcheck inside the image)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.support.bento_server import ROOT

DEPLOY = ROOT / "deploy"


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
