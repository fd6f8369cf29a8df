"""The cluster files agree with Ray, KubeRay's conventions and bwc's own configuration: the launcher YAML passes
Ray's cluster-launcher schema, every custom resource the bwc configuration asks for is offered by a node type, the
actors fit on their nodes, and the RayJob's entrypoint is a ``bwc run`` the command line accepts."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bwc.cli import app
from bwc.config import BwcConfig, load_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


@pytest.fixture(scope="module")
def bwc_config(tmp_path_factory: pytest.TempPathFactory) -> BwcConfig:
    return load_config(tmp_path_factory.mktemp("models"), CLUSTER / "bwc.yaml")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


def _rayjob_offers(group: dict[str, Any]) -> dict[str, float]:
    """What a KubeRay group's pods offer Ray: custom resources from rayStartParams, CPUs and GPUs from limits."""
    params = group["rayStartParams"]
    offered = json.loads(json.loads(params["resources"])) if "resources" in params else {}
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    offered["CPU"] = float(limits.get("cpu", 0))
    offered["GPU"] = float(limits.get("nvidia.com/gpu", params.get("num-gpus", 0)))
    return offered


def _actor_needs(config: BwcConfig) -> list[tuple[dict[str, float], dict[str, float]]]:
    """(custom resources, CPUs and GPUs) each kind of actor asks for."""
    run = config.run
    return [
        (run.speech_resources, {"CPU": run.cpus_per_speech_worker, "GPU": run.gpus_per_speech_worker}),
        (run.scoring_resources, {"CPU": run.cpus_per_scoring_worker, "GPU": 0.0}),
    ]


def test_launcher_yaml_passes_rays_own_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _load("bwc-cluster.yaml")
    validate_config(prepare_config(config))
    broken = _load("bwc-cluster.yaml")
    broken["available_node_types"]["gpu_worker"]["gpus"] = 1  # not a field: the schema must say so
    with pytest.raises(Exception, match="gpus"):
        validate_config(prepare_config(broken))


def test_every_actor_has_a_node_type_that_offers_its_resources(bwc_config: BwcConfig) -> None:
    launcher = {
        name: spec.get("resources", {}) for name, spec in _load("bwc-cluster.yaml")["available_node_types"].items()
    }
    rayjob = _load("rayjob-nightly.yaml")["spec"]["rayClusterSpec"]
    groups = {"head": _rayjob_offers(rayjob["headGroupSpec"])} | {
        group["groupName"]: _rayjob_offers(group) for group in rayjob["workerGroupSpecs"]
    }
    assert bwc_config.run.gpus_per_speech_worker > 0, "the cluster configuration is the GPU one"
    for custom, compute in _actor_needs(bwc_config):
        assert custom, "each kind of actor is pinned to its node type"
        for offers in (launcher, groups):
            hosts = [name for name, offer in offers.items() if all(offer.get(k, 0) >= v for k, v in custom.items())]
            assert hosts, f"no node type offers {custom}"
        for name, offer in groups.items():
            if not all(offer.get(k, 0) >= v for k, v in custom.items()):
                continue
            actors = min(offer[k] // v for k, v in custom.items())  # actors the custom resources let in
            for kind, amount in compute.items():
                assert actors * amount <= offer[kind], f"{name}: {actors} actors need {actors * amount} {kind}"


def test_rayjob_entrypoint_is_a_bwc_run_the_cli_accepts() -> None:
    job = _load("rayjob-nightly.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["bwc", "run"]
    import typer.main

    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    known = {option for param in run.params for option in param.opts}
    used = [word for word in words if word.startswith("--")]
    assert set(used) <= known, set(used) - known
    assert words[words.index("--address") + 1] == "auto"
    config_path = words[words.index("--config") + 1]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    config_volume = next(v for v in head["volumes"] if "configMap" in v)
    assert config_path.startswith(mounts[config_volume["name"]] + "/")
