"""cluster/ configurations: the launcher YAMLs pass Ray's own validation (offline), the
KubeRay manifests carry what the CRDs require, and all of them pin the versions robprune does.
"""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
import yaml

from tests.support.paths import ROOT

CLUSTER = ROOT / "cluster"
PINS = dict(
    re.match(r"([A-Za-z0-9_.\[\],-]+)==(\S+)", d).groups()
    for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if "==" in d
)
RAY_VERSION = PINS["ray[default,tune]"]


def _load(name: str):
    return list(yaml.safe_load_all((CLUSTER / name).read_text()))


@pytest.mark.parametrize("name, provider", [("aws.yaml", "aws"), ("gcp.yaml", "gcp")])
def test_launcher_config_passes_rays_validation(name, provider):
    from ray.autoscaler._private.util import prepare_config, validate_config

    (config,) = _load(name)
    assert config["provider"]["type"] == provider
    prepared = prepare_config(copy.deepcopy(config))  # merges Ray's defaults for the provider
    validate_config(prepared)  # Ray's JSON schema (ray/autoscaler/ray-schema.json)

    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # CPU head: no trials there
    workers = [n for k, n in nodes.items() if k != config["head_node_type"]]
    assert len(workers) == 1 and 0 == workers[0]["min_workers"] < workers[0]["max_workers"]
    gpu = workers[0]["node_config"]
    assert gpu.get("InstanceType", "").startswith(("g5", "p4", "p5", "g6")) or gpu.get(
        "guestAccelerators"
    )
    # robprune from this checkout, with pyproject.toml's pins, on every node
    assert config["file_mounts"]["/home/ubuntu/robprune"] == "."
    assert any("pip install" in c and "~/robprune" in c for c in config["setup_commands"])
    # the dashboard on loopback, token auth on, on the head and the workers
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "RAY_AUTH_MODE=token" in start
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])


def test_launcher_validation_catches_a_broken_config():
    """The check above can fail: Ray's schema rejects an unknown top-level key."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    (config,) = _load("aws.yaml")
    config["max_wokers"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def _require(node, path: str):
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"missing {path}"
        node = node[part]
    return node


def test_kuberay_manifests():
    docs = {d["kind"]: d for d in _load("kuberay.yaml")}
    assert set(docs) == {"RayCluster", "RayJob"}
    cluster, job = docs["RayCluster"], docs["RayJob"]
    for doc in docs.values():
        assert doc["apiVersion"] == "ray.io/v1" and _require(doc, "metadata.name")
    assert _require(cluster, "spec.rayVersion") == RAY_VERSION
    head = _require(cluster, "spec.headGroupSpec")
    assert _require(head, "rayStartParams.num-cpus") == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    (container,) = _require(head, "template.spec.containers")
    assert container["name"] and container["image"]
    for group in _require(cluster, "spec.workerGroupSpecs"):
        assert group["groupName"] and 0 == group["minReplicas"] < group["maxReplicas"]
        (worker,) = _require(group, "template.spec.containers")
        assert worker["image"] == container["image"]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
        env = {e["name"]: e for e in worker["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]  # never a literal token
    entrypoint = _require(job, "spec.entrypoint")
    assert entrypoint.startswith("robprune search ")
    # a recreated RayJob continues its experiment: a fixed name, object storage, --resume
    assert "--resume" in entrypoint.split() and "--name" in entrypoint.split()
    assert "--storage s3://" in entrypoint
    assert job["spec"]["backoffLimit"] >= 1
    assert _require(job, "spec.clusterSelector")["ray.io/cluster"] == cluster["metadata"]["name"]
    meta = _require(job, "spec.metadata")
    assert {"robprune", "robprune_command", "robprune_experiment"} <= set(meta)


def test_image_pins_rays_version():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY_VERSION}-" in dockerfile
    assert "pip install --no-cache-dir -e ." in dockerfile


def test_no_literal_credentials_in_configs():
    for path in CLUSTER.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"(SECRET|TOKEN)[A-Z_]*\s*[:=]\s*['\"]?[A-Za-z0-9/+]{16,}", text)
