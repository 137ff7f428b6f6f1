"""deploy/: the Dockerfiles, docker-compose.yml, the Kubernetes manifests and their README agree.

Fast and offline: YAML is parsed with PyYAML; Kubernetes objects of built-in kinds are checked
field by field against the kubernetes client's models (unknown fields, wrong types and missing
required fields fail), KEDA objects against a small schema written here; every `streamer` command
line the files run or the README gives is parsed by the real argparse parser (build_parser).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import importlib.util
import io
import json
import os
import re
import shlex
import threading
import tomllib
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import kubernetes.client as kubernetes_client
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
README = DEPLOY / "README.md"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"]
SECRET = K8S / "secret.example.yaml"
PLACEHOLDER_REDIS = "redis://:secret@redis:6379/0"  # the value of an env var that comes from a secret


# ---------------------------------------------------------------------------------------------------
# helpers


def parse_streamer(args, env: dict[str, str] | None = None):
    """argparse Namespace of `streamer ARGS` with exactly `env` as STREAMER_* variables; fails the
    test with argparse's message when the command line is not valid. None for --help."""
    from streamer.cli import build_parser

    args = [str(arg) for arg in args]
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
    environ.update(env or {})
    stderr = io.StringIO()
    with mock.patch.dict(os.environ, environ, clear=True):
        parser = build_parser()  # reads STREAMER_REDIS when built
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                return parser.parse_args(args)
        except SystemExit as exit:
            if exit.code == 0:
                return None
            pytest.fail(f"`streamer {shlex.join(args)}` does not parse: {stderr.getvalue().strip()}")


def load_documents(path: Path) -> list[dict]:
    with path.open() as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def k8s_objects() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in k8s_files() for doc in load_documents(path) if path.name != "kustomization.yaml"]


def objects_of(kind: str, api_version: str | None = None) -> list[dict]:
    return [
        doc
        for _, doc in k8s_objects()
        if doc.get("kind") == kind and (api_version is None or doc.get("apiVersion") == api_version)
    ]


def by_name(kind: str, name: str) -> dict:
    found = [doc for doc in objects_of(kind) if doc["metadata"]["name"] == name]
    assert found, f"no {kind} named {name!r} in deploy/k8s"
    return found[0]


def container_env(container: dict) -> dict[str, str]:
    """The container's environment, a placeholder for values taken from secrets."""
    env = {}
    for item in container.get("env", []):
        key = item.get("valueFrom", {}).get("secretKeyRef", {}).get("key", "")
        env[item["name"]] = item["value"] if "value" in item else PLACEHOLDER_REDIS if "redis" in key else "x" * 24
    return env


def streamer_containers() -> list[tuple[dict, dict]]:
    """(Deployment, container) for every container that runs the streamer image."""
    return [
        (deployment, container)
        for deployment in objects_of("Deployment", "apps/v1")
        for container in deployment["spec"]["template"]["spec"]["containers"]
        if container["image"].split(":")[0].rsplit("/", 1)[-1] == "streamer"
    ]


def container_command(container: dict) -> list[str]:
    return ["streamer"] + [str(arg) for arg in container.get("args", [])]  # no container sets `command:` (tested)


def worker_deployment() -> tuple[dict, dict, object]:
    """The Deployment running `streamer worker`, its container and the parsed arguments."""
    found = [(d, c) for d, c in streamer_containers() if c.get("args", [None])[0] == "worker"]
    assert len(found) == 1, "expected one Deployment running `streamer worker`"
    deployment, container = found[0]
    return deployment, container, parse_streamer(container["args"], container_env(container))


def resolve_port(port, container: dict) -> int:
    """A probe's or Service's port (number or container port name) as a number."""
    if isinstance(port, int):
        return port
    names = {item.get("name"): item["containerPort"] for item in container.get("ports", [])}
    assert port in names, f"port {port!r} is not a port of container {container['name']}"
    return names[port]


def interpolate(text: str) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} with the variables unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)


def compose() -> dict:
    return load_documents(COMPOSE)[0]


def compose_command(service: dict) -> list[str]:
    return [interpolate(str(arg)) for arg in service["command"]]


def compose_env(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(str(value)) for key, value in environment.items()}


def streamer_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if interpolate(str(service.get("image", ""))).split(":")[0] == "streamer"
    }


def healthcheck_module():
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------
# a strict validator against the kubernetes client's models


def api_class_name(api_version: str) -> str:
    """`apps/v1` → AppsV1Api, `v1` → CoreV1Api, `rbac.authorization.k8s.io/v1` → RbacAuthorizationV1Api."""
    group, _, version = api_version.rpartition("/")
    group = group.removesuffix(".k8s.io")
    prefix = "".join(part[:1].upper() + part[1:] for part in group.split(".")) if group else "Core"
    return f"{prefix}{version[:1].upper()}{version[1:]}Api"


def snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def model_class(api_version: str, kind: str):
    """The kubernetes client's model of a built-in kind, after checking the API serves that kind."""
    api = getattr(kubernetes_client, api_class_name(api_version), None)
    assert api is not None, f"apiVersion {api_version!r} is not a Kubernetes API"
    assert any(hasattr(api, f"create{scope}{snake(kind)}") for scope in ("_namespaced_", "_")), (
        f"{api_version} has no kind {kind}"
    )
    version = api_version.rpartition("/")[2]
    klass = getattr(kubernetes_client, f"{version[:1].upper()}{version[1:]}{kind}", None)
    assert klass is not None, f"no model for {api_version} {kind}"
    return klass


def check_value(value, type_name: str, path: str, errors: list[str]) -> None:
    type_name = type_name.strip()
    if match := re.fullmatch(r"Optional\[(.*)\]", type_name):
        return check_value(value, match[1], path, errors)
    if match := re.fullmatch(r"(?:List|list)\[(.*)\]", type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check_value(item, match[1], f"{path}[{index}]", errors)
        return
    if match := re.fullmatch(r"(?:Dict\[|dict\()\s*[^,]+,\s*(.*)[\])]", type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: key {key!r} is not a string")
            check_value(item, match[1], f"{path}.{key}", errors)
        return
    primitive = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "datetime": lambda v: isinstance(v, str),
        "date": lambda v: isinstance(v, str),
        # IntOrString (ports, maxSurge) and free-form fields
        "object": lambda v: isinstance(v, (str, int, float, bool, dict, list)),
    }
    if type_name in primitive:
        if not primitive[type_name](value):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    klass = getattr(kubernetes_client, type_name, None)
    if klass is None or not hasattr(klass, "openapi_types"):
        errors.append(f"{path}: unknown model type {type_name}")
        return
    check_model(value, klass, path, errors)


def check_model(value, klass, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {klass.__name__} mapping, got {type(value).__name__}")
        return
    by_key = {key: attribute for attribute, key in klass.attribute_map.items()}
    for key, item in value.items():
        if key not in by_key:
            errors.append(f"{path}.{key}: not a field of {klass.__name__}")
            continue
        if item is None:
            errors.append(f"{path}.{key}: empty value")
            continue
        check_value(item, klass.openapi_types[by_key[key]], f"{path}.{key}", errors)
    for attribute, field in getattr(klass, "model_fields", {}).items():  # pydantic models (client >= 35)
        key = klass.attribute_map.get(attribute)
        if key and field.is_required() and key not in value:
            errors.append(f"{path}: {klass.__name__} requires {key}")


def validate_k8s(doc: dict) -> list[str]:
    """Problems of one Kubernetes object of a built-in kind (empty when valid)."""
    klass = model_class(doc["apiVersion"], doc["kind"])
    errors: list[str] = []
    check_model(doc, klass, doc["kind"], errors)
    if not errors:  # the client's own deserialisation: required fields, strict types
        try:
            kubernetes_client.ApiClient()._ApiClient__deserialize(doc, klass.__name__)
        except Exception as error:
            errors.append(f"{doc['kind']}: {type(error).__name__}: {error}")
    return errors


BUILTIN = [
    (path, index, doc)
    for path in k8s_files()
    if path.name != "kustomization.yaml"
    for index, doc in enumerate(load_documents(path))
    if "keda.sh" not in doc.get("apiVersion", "")
]


@pytest.mark.parametrize(
    "path, index, doc",
    BUILTIN,
    ids=[f"{path.name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}" for path, index, doc in BUILTIN],
)
def test_builtin_objects_validate_against_kubernetes_models(path, index, doc):
    assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name} document {index}"
    assert doc["metadata"].get("name"), f"{path.name} document {index} has no name"
    assert validate_k8s(doc) == []


def test_validator_is_strict():
    good = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "resources": {"limits": {"cpu": "1"}},
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }
            ]
        },
    }
    assert validate_k8s(good) == []

    def broken(change):
        doc = json.loads(json.dumps(good))
        change(doc["spec"]["containers"][0])
        return validate_k8s(doc)

    assert any("not a field" in e for e in broken(lambda c: c.update(imagePullPolcy="Always")))  # typo
    assert any("expected int" in e for e in broken(lambda c: c["ports"][0].update(containerPort="80")))
    assert any("expected a list" in e for e in broken(lambda c: c.update(args="worker")))
    assert any("expected str" in e for e in broken(lambda c: c["resources"]["limits"].update(cpu=1)))
    assert any("requires name" in e for e in broken(lambda c: c.pop("name")))
    with pytest.raises(AssertionError):
        model_class("apps/v1", "Deploymnet")
    with pytest.raises(AssertionError):
        model_class("v1", "Deployment")  # Deployments are apps/v1


# ---------------------------------------------------------------------------------------------------
# Kubernetes manifests


def test_every_yaml_document_parses():
    for path in [*k8s_files(), COMPOSE]:
        documents = load_documents(path)
        assert documents, f"{path} is empty"
        for doc in documents:
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"


def test_kustomization_lists_the_manifests():
    kustomization = load_documents(K8S / "kustomization.yaml")[0]
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    expected = {path.name for path in k8s_files()} - {"kustomization.yaml", SECRET.name}
    assert sorted(kustomization["resources"]) == sorted(expected)
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images", "namespace", "labels"}


def test_selectors_services_and_names_fit_together():
    deployments = objects_of("Deployment", "apps/v1")
    names = [(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_objects()]
    assert len(names) == len(set(names)), "two objects share a kind and name"
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
    for service in objects_of("Service", "v1"):
        selector = service["spec"]["selector"]
        matching = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)} Deployments"
        container = matching[0]["spec"]["template"]["spec"]["containers"][0]
        for port in service["spec"]["ports"]:
            resolve_port(port.get("targetPort", port["port"]), container)


def test_every_pod_runs_as_non_root():
    for deployment in objects_of("Deployment", "apps/v1"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, name
        assert pod["securityContext"].get("runAsUser", 0) != 0, name
        for container in pod["containers"]:
            assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, name
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in {volume["name"] for volume in pod.get("volumes", [])}, name


def test_secret_references_exist():
    secret = load_documents(SECRET)[0]
    keys = set(secret["stringData"])
    references = []
    for deployment in objects_of("Deployment", "apps/v1"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", []):
                if "secretKeyRef" in item.get("valueFrom", {}):
                    references.append(item["valueFrom"]["secretKeyRef"])
    for auth in objects_of("TriggerAuthentication"):
        references += auth["spec"]["secretTargetRef"]
    assert references
    for reference in references:
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in keys, f"secret {reference['name']} has no key {reference['key']}"
    # one URL per user of users.acl, all of the same Redis; KEDA's user and password are serve's
    data = secret["stringData"]
    assert {key.removeprefix("redis-") for key in data if key.startswith("redis-")} == acl_users() - {"default"}
    for key, value in data.items():
        if key.startswith("redis-"):
            url = urlsplit(value)
            assert url.scheme in ("redis", "rediss") and url.username == key.removeprefix("redis-"), key
            assert f"{url.hostname}:{url.port}" == data["address"], key
            assert by_name("Service", url.hostname)  # the in-cluster Redis's Service
            assert any(port["port"] == url.port for port in by_name("Service", url.hostname)["spec"]["ports"])
    serve = urlsplit(data["redis-serve"])
    assert (serve.username, serve.password) == (data["username"], data["password"])


def acl_users() -> set[str]:
    return {line.split()[1] for line in (DEPLOY / "redis" / "users.acl").read_text().splitlines() if line.strip()}


def secret_env(container: dict) -> dict[str, str]:
    """Variable name → the key of the secret it comes from."""
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"]["key"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


def test_every_k8s_process_connects_as_its_own_user():
    """Workers and batch runners as `runner`, the status page as `serve` with its token, KEDA as `serve`;
    the in-cluster Redis gets every user's URL as a file and starts with the ACL users (acl.sh)."""
    roles = {}
    for _, container in streamer_containers():
        roles[container["args"][0]] = secret_env(container)
    assert roles["worker"] == {"STREAMER_REDIS": "redis-runner"}
    assert roles["serve"] == {"STREAMER_REDIS": "redis-serve", "STREAMER_SERVE_TOKEN": "serve-token"}
    text = (K8S / "batch" / "keda-scaledjob.yaml").read_text()
    assert "key: redis-runner" in text and "key: url" not in text
    [auth] = objects_of("TriggerAuthentication")
    assert {ref["parameter"]: ref["key"] for ref in auth["spec"]["secretTargetRef"]} == {
        "address": "address",
        "username": "username",
        "password": "password",
    }
    redis = by_name("Deployment", "redis")["spec"]["template"]["spec"]
    [container] = redis["containers"]
    assert container["args"][:3] == ["sh", "/usr/local/etc/redis/acl.sh", "start"]
    assert container["readinessProbe"]["exec"]["command"] == ["sh", "/usr/local/etc/redis/acl.sh", "ping"]
    assert "env" not in container, "no password in the environment or arguments"
    volumes = {volume["name"]: volume for volume in redis["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}
    assert mounts["/usr/local/etc/redis"]["configMap"]["name"] == "streamer-redis-acl"
    items = mounts["/run/secrets"]["secret"]["items"]
    assert {item["key"] for item in items} == {f"redis-{user}" for user in acl_users() - {"default"}}
    assert all(item["path"] == item["key"] for item in items)


def test_streamer_containers_run_valid_commands():
    containers = streamer_containers()
    assert {container["args"][0] for _, container in containers} >= {"worker", "serve"}
    for _, container in containers:
        assert "command" not in container, "keep the image's ENTRYPOINT (streamer)"
        parse_streamer(container["args"], container_env(container))


def test_worker_deployment():
    deployment, container, args = worker_deployment()
    pod = deployment["spec"]["template"]["spec"]
    assert args.metrics_port, "the worker needs --metrics-port for its probes"
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert resolve_port(container[probe]["httpGet"]["port"], container) == int(args.metrics_port), probe
    assert container["env"] and "STREAMER_REDIS" in container_env(container)
    limits = container["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == "1"
    assert container["resources"].get("requests", {}).get("nvidia.com/gpu", "1") == limits["nvidia.com/gpu"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port") == str(args.metrics_port)
    metrics = [
        s
        for s in objects_of("Service", "v1")
        if s["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert metrics, "no Service for the workers' metrics"
    assert any(
        resolve_port(port["targetPort"], container) == int(args.metrics_port)
        for service in metrics
        for port in service["spec"]["ports"]
    )
    assert "preStop" not in container.get("lifecycle", {}), "SIGTERM already drains: no preStop hook"
    for service in metrics:  # the pods carry prometheus.io/*: on the Service too, Prometheus scrapes twice
        assert not any(key.startswith("prometheus.io/") for key in service["metadata"].get("annotations", {}))


def test_worker_disruption_budget():
    deployment, _, _ = worker_deployment()
    [budget] = objects_of("PodDisruptionBudget", "policy/v1")
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert budget["spec"].get("maxUnavailable") == 1 and "minAvailable" not in budget["spec"]


def test_monitoring_service_monitors():
    """deploy/k8s/monitoring: ServiceMonitors (Prometheus Operator) for the workers' and serve's /metrics,
    each selecting exactly the Service of deploy/k8s whose named port serves them."""
    folder = K8S / "monitoring"
    kustomization = load_documents(folder / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in folder.glob("*.yaml") if p.stem != "kustomization"
    )
    monitors = [doc for name in kustomization["resources"] for doc in load_documents(folder / name)]
    assert {doc["kind"] for doc in monitors} == {"ServiceMonitor"}
    services = objects_of("Service", "v1")
    targets = {}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        check_keys(
            monitor, {"apiVersion", "kind", "metadata", "spec"}, {"apiVersion", "kind", "metadata", "spec"}, "SM"
        )
        check_keys(
            monitor["spec"],
            {"selector", "endpoints", "namespaceSelector", "jobLabel"},
            {"selector", "endpoints"},
            "spec",
        )
        selector = monitor["spec"]["selector"]["matchLabels"]
        [service] = [s for s in services if selector.items() <= s["metadata"].get("labels", {}).items()]
        for endpoint in monitor["spec"]["endpoints"]:
            check_keys(endpoint, {"port", "path", "interval", "scrapeTimeout", "scheme"}, {"port"}, "endpoint")
            assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
            assert endpoint.get("path", "/metrics") == "/metrics"
        targets[service["metadata"]["name"]] = monitor
    assert set(targets) == {"streamer-worker-metrics", "streamer-serve"}
    # the worker Service's port reaches the worker's --metrics-port; serve's reaches its --port
    deployment, container, args = worker_deployment()
    [port] = by_name("Service", "streamer-worker-metrics")["spec"]["ports"]
    assert resolve_port(port["targetPort"], container) == int(args.metrics_port)
    [(_, serve)] = [(d, c) for d, c in streamer_containers() if c["args"][0] == "serve"]
    [port] = by_name("Service", "streamer-serve")["spec"]["ports"]
    assert resolve_port(port["targetPort"], serve) == int(parse_streamer(serve["args"], container_env(serve)).port)


def test_serve_deployment():
    found = [(d, c) for d, c in streamer_containers() if c["args"][0] == "serve"]
    assert len(found) == 1
    deployment, container = found[0]
    args = parse_streamer(container["args"], container_env(container))
    assert args.host == "0.0.0.0"
    for probe in ("livenessProbe", "readinessProbe"):
        action = container[probe].get("httpGet") or container[probe].get("tcpSocket")
        assert resolve_port(action["port"], container) == int(args.port)


# --- KEDA: a small explicit schema (keda.sh/v1alpha1) ------------------------------------------------

SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
REDIS_STREAMS_METADATA = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
    "activationValue",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
}
AUTH_PARAMETERS = {"address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}


def check_keys(mapping: dict, allowed: set[str], required: set[str], where: str) -> None:
    assert isinstance(mapping, dict), f"{where}: not a mapping"
    assert not set(mapping) - allowed, f"{where}: unknown fields {sorted(set(mapping) - allowed)}"
    assert required <= set(mapping), f"{where}: missing {sorted(required - set(mapping))}"


def test_keda_objects():
    keda = [doc for _, doc in k8s_objects() if doc["apiVersion"].startswith("keda.sh/")]
    assert {doc["kind"] for doc in keda} == {"ScaledObject", "TriggerAuthentication"}
    for doc in keda:
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        check_keys(
            doc, {"apiVersion", "kind", "metadata", "spec"}, {"apiVersion", "kind", "metadata", "spec"}, doc["kind"]
        )
        errors: list[str] = []
        check_model(doc["metadata"], kubernetes_client.V1ObjectMeta, f"{doc['kind']}.metadata", errors)
        assert errors == []

    for auth in objects_of("TriggerAuthentication"):
        check_keys(
            auth["spec"], {"secretTargetRef", "env", "podIdentity"}, {"secretTargetRef"}, "TriggerAuthentication.spec"
        )
        for ref in auth["spec"]["secretTargetRef"]:
            check_keys(ref, {"parameter", "name", "key"}, {"parameter", "name", "key"}, "secretTargetRef")
            assert ref["parameter"] in AUTH_PARAMETERS

    deployment, _, args = worker_deployment()
    from streamer.distributed.connection import WORKER_GROUP, Keys

    scaled = objects_of("ScaledObject")
    assert len(scaled) == 1
    spec = scaled[0]["spec"]
    check_keys(spec, SCALED_OBJECT_SPEC, {"scaleTargetRef", "triggers"}, "ScaledObject.spec")
    target = spec["scaleTargetRef"]
    check_keys(target, {"apiVersion", "kind", "name", "envSourceContainerName"}, {"name"}, "scaleTargetRef")
    assert target["name"] == deployment["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment" and target.get("apiVersion", "apps/v1") == "apps/v1"
    for field in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        assert isinstance(spec.get(field, 0), int) and not isinstance(spec.get(field, 0), bool), field
    assert 0 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100)
    if "advanced" in spec:
        check_keys(
            spec["advanced"],
            {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount", "scalingModifiers"},
            set(),
            "advanced",
        )
        behavior = spec["advanced"].get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior is not None:
            errors: list[str] = []
            check_model(behavior, kubernetes_client.V2HorizontalPodAutoscalerBehavior, "behavior", errors)
            assert errors == []

    assert spec["triggers"]
    auth_names = {auth["metadata"]["name"] for auth in objects_of("TriggerAuthentication")}
    for trigger in spec["triggers"]:
        check_keys(trigger, TRIGGER_FIELDS, {"type", "metadata"}, "trigger")
        assert trigger["type"] == "redis-streams"
        metadata = trigger["metadata"]
        check_keys(metadata, REDIS_STREAMS_METADATA, {"stream", "consumerGroup"}, "redis-streams metadata")
        for key, value in metadata.items():
            assert isinstance(value, str), f"trigger metadata {key}: KEDA takes strings, got {value!r}"
        assert metadata["stream"] == Keys(args.namespace).work(args.model) == f"{args.namespace}:work:{args.model}"
        assert metadata["consumerGroup"] == WORKER_GROUP == "workers"
        count = metadata.get("lagCount") or metadata.get("pendingEntriesCount")
        assert count is not None and count.isdigit() and int(count) > 0
        assert trigger["authenticationRef"]["name"] in auth_names
        auth = by_name("TriggerAuthentication", trigger["authenticationRef"]["name"])
        parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert "address" in parameters or {"address", "host", "addressFromEnv"} & set(metadata)
        secret_url = urlsplit(load_documents(SECRET)[0]["stringData"]["redis-serve"])
        assert metadata.get("databaseIndex", "0") == (secret_url.path.strip("/") or "0")
        assert metadata.get("enableTLS", "false") == ("true" if secret_url.scheme == "rediss" else "false")
    # lag (not yet delivered) and pending (being worked on): busy workers are not scaled down
    counted = {
        key for trigger in spec["triggers"] for key in ("lagCount", "pendingEntriesCount") if key in trigger["metadata"]
    }
    assert counted == {"lagCount", "pendingEntriesCount"}
    for trigger in spec["triggers"]:
        assert not {"lagCount", "pendingEntriesCount"} <= set(trigger["metadata"]), "one count per trigger"
    [pending] = [t["metadata"] for t in spec["triggers"] if "pendingEntriesCount" in t["metadata"]]
    assert int(pending["pendingEntriesCount"]) <= args.batch, "a worker busy with one batch counts as a replica"


# ---------------------------------------------------------------------------------------------------
# docker-compose.yml


def test_compose_services():
    services = compose()["services"]
    assert {"redis", "worker", "producer", "serve"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["redis"]
    raw = COMPOSE.read_text()
    undefaulted = [v for v in re.findall(r"\$\{([^}]*)\}", raw) if "-" not in v]
    assert not undefaulted, f"variables without a default: {undefaulted}"
    for name, service in streamer_services().items():
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).is_file(), name


def test_compose_commands_parse():
    services = streamer_services()
    assert {"worker", "producer", "serve"} <= set(services)
    for _name, service in services.items():
        command = compose_command(service)
        parse_streamer(command, compose_env(service))
        parse_streamer(command)  # complete without the environment too


def test_compose_workers_scale_and_drain():
    health = healthcheck_module()
    for name, service in streamer_services().items():
        command = compose_command(service)
        if command[0] != "worker":
            continue
        args = parse_streamer(command)
        assert args.metrics_port
        assert "container_name" not in service and "ports" not in service, f"{name}: --scale needs no fixed names/ports"
        assert any(interpolate(v).endswith(":/data") for v in service["volumes"]), f"{name}: submitted jobs need /data"
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and test[-1] == healthcheck_path(DOCKERFILES[0])
        assert health.probe(command) == ("http", "127.0.0.1", int(args.metrics_port), "/healthz")
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) >= 30
    gpu = compose()["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_compose_producer_reads_the_mounted_folder():
    producer = compose()["services"]["producer"]
    assert "${INPUT:-/data/in/input.mp4}" in producer["command"]
    command = compose_command(producer)
    args = parse_streamer(command)
    assert args.input == "/data/in/input.mp4"
    assert args.redis == "@/run/secrets/redis-producer"
    assert any(interpolate(volume).endswith(":/data") for volume in producer["volumes"])
    assert interpolate(producer["user"]).split(":")[0] != "0"
    serve = compose()["services"]["serve"]
    args = parse_streamer(compose_command(serve))
    assert any(interpolate(port).endswith(f":{args.port}") for port in serve["ports"])


# ---------------------------------------------------------------------------------------------------
# Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            instructions.append((word.upper(), " ".join(rest.split())))
            current = ""
    return instructions


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(path):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def from_image(path: Path, arguments: str) -> str:
    defaults = {}
    for word, rest in dockerfile_instructions(path):
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            defaults[key] = value
    image = arguments.split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m[1], m[0]), image)


def healthcheck_path(path: Path) -> str:
    final = stages(path)[-1]
    healthcheck = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(healthcheck) == 1
    command = json.loads(healthcheck[0].split(" CMD ", 1)[1])
    return command[-1]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile(path):
    all_stages = stages(path)
    assert len(all_stages) >= 2, "multi-stage"
    final = all_stages[-1]
    assert from_image(path, final[0][1]) == "python:3.11-slim"
    words = [word for word, _ in final]
    copies = [rest for word, rest in final if word == "COPY"]
    assert any(rest.startswith("--from=builder /opt/venv") for rest in copies)
    run = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("gcc", "build-essential", "pip install", "apt-get install", "g++", "make "):
        assert tool not in run, f"the runtime stage installs {tool}"
    users = [rest for word, rest in final if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "a numeric non-root USER"
    assert words.index("USER") > max(i for i, word in enumerate(words) if word in ("RUN", "COPY"))

    entrypoint = json.loads([rest for word, rest in final if word == "ENTRYPOINT"][-1])
    assert entrypoint == ["streamer"]
    cmd = json.loads([rest for word, rest in final if word == "CMD"][-1])
    parse_streamer(cmd)

    # the health check script is the one copied into the image, and it exists
    script = healthcheck_path(path)
    assert f"deploy/healthcheck.py {script}" in copies

    # every COPY from the build context exists and passes the Dockerfile's .dockerignore
    ignore = (path.parent / f"{path.name}.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for stage in all_stages:
        for word, rest in stage:
            if word == "COPY" and not rest.startswith("--from"):
                sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such path"
                    assert source.rstrip("/") in allowed, f"{path.name}: {source} is excluded by the .dockerignore"

    builder = " ".join(rest for word, rest in all_stages[0] if word == "RUN")
    assert "pip install -c deploy/requirements.lock " in builder, "dependencies at the lock's versions"
    assert '".[models' in builder, "the image runs models: the models extra"
    assert ('"tensorflow[and-cuda]"' in builder) == path.name.endswith(".gpu")

    named = {stage[0][1].split()[-1]: stage for stage in all_stages}
    if "worker-serve" in named:  # the image without TensorFlow: the serve extra, from its own builder
        serve = named["worker-serve"]
        assert from_image(path, serve[0][1]) == "python:3.11-slim"
        assert [rest for word, rest in serve if word == "COPY"][0] == "--from=serve-builder /opt/venv /opt/venv"
        assert [w for w, _ in serve if w not in ("EXPOSE",)] == [w for w, _ in final if w not in ("EXPOSE",)]
        assert [r for w, r in serve if w == "ENV"] == [r for w, r in final if w == "ENV"]  # metrics host too
        builder = " ".join(rest for word, rest in named["serve-builder"] if word == "RUN")
        assert '".[serve' in builder and "models" not in builder and '! python -c "import tensorflow"' in builder


def lock_pins() -> dict[str, str]:
    """{normalised name: version} of deploy/requirements.lock."""
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_every_requirement_of_the_images():
    """deploy/requirements.lock (pip-compile) pins a version that satisfies each requirement of the package
    and of the extras the images install; stale after a pyproject.toml change until regenerated."""
    from packaging.requirements import Requirement

    text = (DEPLOY / "requirements.lock").read_text()
    assert "autogenerated by pip-compile" in text
    command = re.search(r"#\s+(pip-compile .*)", text)[1].split()
    extras = {word.split("=", 1)[1] for word in command if word.startswith("--extra=")}
    assert extras == {"models", "cloud", "serve"} and command[-1] == "pyproject.toml"
    assert "--allow-unsafe" in command, "setuptools (a TensorFlow dependency) is pinned too"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    wanted = pyproject["dependencies"] + [
        r for extra in sorted(extras) for r in pyproject["optional-dependencies"][extra]
    ]
    for line in wanted:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{requirement.name}: not in deploy/requirements.lock; regenerate it (deploy/README.md)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{line}: the lock has {pins[name]}; regenerate it (deploy/README.md)"
        )
    assert "tensorflow" in pins and "keras" in pins


def test_models_are_an_extra():
    """`pip install streamer` runs submit/status/cancel/serve without TensorFlow; the models extra adds it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[^A-Za-z0-9_.-]", line, maxsplit=1)[0].lower() for line in pyproject["dependencies"]}
    assert not names & {"tensorflow", "keras", "albumentations", "h5py"}
    models = {
        re.split(r"[^A-Za-z0-9_.-]", line, maxsplit=1)[0].lower()
        for line in pyproject["optional-dependencies"]["models"]
    }
    assert {"tensorflow", "keras", "albumentations", "h5py"} <= models
    assert "streamer[models]" in pyproject["optional-dependencies"]["test"]


# ---------------------------------------------------------------------------------------------------
# the health check script


class _Handler(http.server.BaseHTTPRequestHandler):
    status = {"/healthz": 200, "/bad": 503}

    def do_GET(self):
        self.send_response(self.status.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args):
        pass


def test_healthcheck_knows_the_commands_and_serves_default_port():
    from streamer.cli import build_parser

    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices
    health = healthcheck_module()
    assert health.COMMANDS == set(commands)
    assert health.SERVE_PORT == commands["serve"].get_default("port")


def test_healthcheck_script():
    health = healthcheck_module()
    assert health.streamer_args(["/opt/venv/bin/python", "/opt/venv/bin/streamer", "worker", "--x"]) == [
        "worker",
        "--x",
    ]
    assert health.streamer_args(["/sbin/docker-init", "--", "streamer", "serve"]) == ["serve"]
    assert health.streamer_args(["python", "-m", "streamer", "batch"]) == ["batch"]
    assert health.streamer_args(["python", "/usr/local/lib/streamer/healthcheck.py"]) is None
    assert health.probe(["worker", "--metrics-port=9200"]) == ("http", "127.0.0.1", 9200, "/healthz")
    assert health.probe(["worker", "--model", "unet"]) is None
    assert health.probe(["process", "in.mp4"]) is None
    assert health.probe(["process", "worker.mp4", "--metrics-port", "9300"]) == ("http", "127.0.0.1", 9300, "/healthz")
    assert health.probe(["--log-format", "json", "worker", "--metrics-port", "9100"])[2] == 9100
    assert health.probe(["serve", "--host", "0.0.0.0", "--port", "8081"]) == ("tcp", "127.0.0.1", 8081, "")
    assert health.probe(["serve", "--host", "0.0.0.0"]) == ("tcp", "127.0.0.1", 8080, "")  # serve's default port

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert health.check(("http", "127.0.0.1", port, "/healthz")) is None
        assert health.check(("http", "127.0.0.1", port, "/bad")) is not None
        assert health.check(("tcp", "127.0.0.1", port, "")) is None
    finally:
        server.shutdown()
        server.server_close()
    assert health.check(("tcp", "127.0.0.1", port, "")) is not None


# ---------------------------------------------------------------------------------------------------
# the README section (deploy/README.md, also the top-level README's "Deploy" section)


def readme_commands() -> list[list[str]]:
    """Command lines of the ```sh blocks: continuation lines joined, comments removed."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, value = words[0].split("=", 1)
        env[key] = value
        words = words[1:]
    return env, words


def streamer_readme_lines() -> list[tuple[dict[str, str], list[str]]]:
    return [(env, words) for env, words in map(split_env, readme_commands()) if words and words[0] == "streamer"]


def option_values(words: list[str], *names: str) -> list[str]:
    values = []
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                values.append(words[index + 1])
            elif name.startswith("--") and word.startswith(name + "="):
                values.append(word.split("=", 1)[1])
    return values


DOCKER_RUN_VALUED = {
    "-v",
    "--volume",
    "-e",
    "--env",
    "-p",
    "--publish",
    "--gpus",
    "--name",
    "--network",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--env-file",
    "--entrypoint",
    "--mount",
}


def test_top_level_readme_carries_the_same_deploy_section():
    top = (DEPLOY.parent / "README.md").read_text()
    section = top[top.index("## Deploy\n") + len("## Deploy\n") : top.index("\n## Architecture")]
    body = README.read_text().split("-->", 1)[1]
    assert section.strip() == body.strip(), "README.md's Deploy section and deploy/README.md must match word for word"


def test_readme_streamer_commands_parse():
    lines = streamer_readme_lines()
    assert len(lines) >= 5
    for env, words in lines:
        parse_streamer(words[1:], {k: v for k, v in env.items() if k.startswith("STREAMER_")})


def test_readme_docker_commands():
    services = compose()["services"]
    profiles = {p for service in services.values() for p in service.get("profiles", [])}
    seen = set()
    for _env, words in map(split_env, readme_commands()):
        if words[:2] == ["docker", "compose"]:
            seen.add("compose")
            files = option_values(words, "-f", "--file")
            assert files, f"{shlex.join(words)}: name the compose file with -f"
            for file in files:
                assert (ROOT / file).is_file(), f"{file} does not exist"
            for scale in option_values(words, "--scale"):
                assert scale.split("=")[0] in services, f"--scale {scale}: no such service"
            for profile in option_values(words, "--profile"):
                assert profile in profiles, f"--profile {profile}: no such profile"
            if "run" in words:
                rest = words[words.index("run") + 1 :]
                while rest and rest[0].startswith("-"):
                    rest = rest[1:]
                service, args = rest[0], rest[1:]
                assert service in services
                parse_streamer(args, compose_env(services[service]))
        elif words[:2] == ["docker", "build"]:
            seen.add("build")
            for file in option_values(words, "-f", "--file"):
                assert (ROOT / file).is_file(), f"{file} does not exist"
            assert words[-1] == ".", "build from the repository root"
        elif words[:2] == ["docker", "run"]:
            seen.add("run")
            rest = words[2:]
            while rest[0].startswith("-"):
                rest = rest[2:] if rest[0] in DOCKER_RUN_VALUED else rest[1:]
            assert rest[0].split(":")[0] == "streamer", f"{shlex.join(words)}: not a streamer image"
            parse_streamer(rest[1:])
    assert seen == {"compose", "build", "run"}


def test_readme_kubectl_commands():
    secret = load_documents(SECRET)[0]
    seen = set()
    for _env, words in map(split_env, readme_commands()):
        if words[:1] != ["kubectl"]:
            continue
        for path in option_values(words, "-f", "--filename", "-k", "--kustomize"):
            if "://" not in path and path != "-":
                assert (ROOT / path).exists(), f"{shlex.join(words)}: {path} does not exist"
                seen.add("apply")
        if "exec" in words and "--" in words:
            target = next(w for w in words[words.index("exec") + 1 :] if "/" in w)
            deployment = by_name("Deployment", target.split("/", 1)[1])
            command = words[words.index("--") + 1 :]
            assert command[0] == "streamer"
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            parse_streamer(command[1:], container_env(container))
            seen.add("exec")
        if "port-forward" in words:
            target = next(w for w in words[words.index("port-forward") + 1 :] if "/" in w)
            service = by_name("Service", target.split("/", 1)[1])
            remote = [w for w in words if re.fullmatch(r"\d+:\d+", w)][0].split(":")[1]
            assert int(remote) in {port["port"] for port in service["spec"]["ports"]}
        if words[1:] and "secret" in words and "generic" in words:
            name = words[words.index("generic") + 1]
            assert name == secret["metadata"]["name"]
            assert option_values(words, "--from-file") == ["deploy/secrets/"]
            keys = set(made_secrets())
            assert keys == set(secret["stringData"]), "the README's secret has the keys the manifests use"
            seen.add("secret")
        if "configmap" in words:
            assert words[words.index("configmap") + 1] == "streamer-redis-acl"
            assert option_values(words, "--from-file") == ["deploy/redis/"]
            assert {p.name for p in (DEPLOY / "redis").iterdir()} == {"users.acl", "acl.sh"}
    assert seen == {"apply", "exec", "secret"}


def made_secrets() -> dict[str, str]:
    """What `sh deploy/make-secrets.sh FOLDER` writes: file name → contents."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), folder], check=True, capture_output=True)
        return {path.name: path.read_text() for path in Path(folder).iterdir()}


def test_made_secrets_fit_the_users_and_keda():
    made = made_secrets()
    assert {k for k in made if k.startswith("redis-")} == {f"redis-{u}" for u in acl_users() - {"default"}}
    for key, value in made.items():
        if key.startswith("redis-"):
            url = urlsplit(value.strip())
            assert url.username == key.removeprefix("redis-") and len(url.password) >= 32
            assert f"{url.hostname}:{url.port}" == made["address"]
    serve = urlsplit(made["redis-serve"].strip())
    assert (made["username"], made["password"]) == (serve.username, serve.password)
    assert len(made["serve-token"]) >= 32


def test_compose_services_each_on_their_own_user():
    """Each streamer service reads its Redis URL from its own secret, for its own user; Redis has every
    user's secret; the page's port is published on loopback unless SERVE_ADDRESS says otherwise."""
    services = compose()["services"]
    expected = {
        "worker": "worker",
        "worker-gpu": "worker",
        "runner": "runner",
        "producer": "producer",
        "serve": "serve",
    }
    for name, service in streamer_services().items():
        args = parse_streamer(compose_command(service))
        role = expected[name]
        assert args.redis == f"@/run/secrets/redis-{role}", name
        assert f"redis-{role}" in service["secrets"], name
        assert not [s for s in service["secrets"] if s.startswith("redis-") and s != f"redis-{role}"], name
        for value in [*compose_command(service), *compose_env(service).values()]:
            assert "redis://" not in value, f"{name}: a URL (and password) written in the file"
        if role == "worker":
            assert args.jobs == 0, f"{name}: the worker user runs no submitted jobs"
    assert set(services["redis"]["secrets"]) == {f"redis-{u}" for u in acl_users() - {"default"}}
    assert set(compose()["secrets"]) == {f"redis-{u}" for u in acl_users() - {"default"}} | {"serve-token"}
    assert parse_streamer(compose_command(services["serve"])).token_file == "/run/secrets/serve-token"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert interpolate(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"
    for name in re.findall(r"`([\w.-]+\.yaml)`", README.read_text()):
        assert (K8S / name).is_file() or (DEPLOY / name).is_file(), f"README names {name}, which does not exist"


def test_files_run_the_commands_the_readme_gives():
    """Every command the compose file and the manifests run is written out in the README, and the
    Dockerfiles' build commands are the README's."""
    given = [words for _, words in streamer_readme_lines()]
    for name, service in streamer_services().items():
        assert ["streamer", *compose_command(service)] in given, f"compose service {name}: not in deploy/README.md"
    for deployment, container in streamer_containers():
        assert container_command(container) in given, f"{deployment['metadata']['name']}: not in deploy/README.md"
    builds = [words for words in readme_commands() if words[:2] == ["docker", "build"]]
    for path in DOCKERFILES:
        header = [
            line.lstrip("# ").strip()
            for line in path.read_text().splitlines()
            if line.lstrip("# ").startswith("docker build")
        ]
        assert header and all(shlex.split(line) in builds for line in header), path.name


# ---------------------------------------------------------------------------------------------------
# batch: an Indexed Job for `batch --shard`, a KEDA ScaledJob of runner pods (deploy/k8s/batch/)

BATCH = K8S / "batch"


def batch_pod_checks(pod: dict, where: str) -> dict:
    """The pod runs one streamer container as non-root, read-only, with an emptyDir scratch at /tmp."""
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, where
    assert pod["restartPolicy"] in ("Never", "OnFailure"), where
    [container] = pod["containers"]
    assert container["image"].split(":")[0] == "streamer" and "command" not in container, where
    assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
    assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    scratch = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert scratch and "emptyDir" in volumes[scratch[0]["name"]], f"{where}: no writable scratch volume at /tmp"
    assert container_env(container).get("HOME") == "/tmp", where
    return container


def test_batch_indexed_job_covers_every_shard():
    from streamer.cli.batch import parse_shard

    [job] = load_documents(BATCH / "batch-shards.yaml")
    assert validate_k8s(job) == []
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = batch_pod_checks(spec["template"]["spec"], "batch-shards.yaml")
    env = {item["name"]: item for item in container["env"]}
    args = [str(arg) for arg in container["args"]]
    shard = args[args.index("--shard") + 1]
    variable, count = re.fullmatch(r"\$\((\w+)\)/(\d+)", shard).groups()
    assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert int(count) == spec["completions"], "one pod per slice"
    slices = set()
    for index in range(spec["completions"]):
        parsed = parse_streamer([arg.replace(f"$({variable})", str(index)) for arg in args])
        assert parsed.output and parsed.inputs and not parsed.redis
        slices.add(parse_shard(parsed.shard))
    assert slices == {(index, int(count)) for index in range(int(count))}


def test_batch_scaled_job_starts_runners_for_queued_videos():
    from streamer.distributed.connection import RUNNER_GROUP, Keys

    [scaled] = load_documents(BATCH / "keda-scaledjob.yaml")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledJob"
    check_keys(
        scaled, {"apiVersion", "kind", "metadata", "spec"}, {"apiVersion", "kind", "metadata", "spec"}, "ScaledJob"
    )
    spec = scaled["spec"]
    check_keys(
        spec,
        {
            "jobTargetRef",
            "pollingInterval",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
            "envSourceContainerName",
            "minReplicaCount",
            "maxReplicaCount",
            "rolloutStrategy",
            "rollout",
            "scalingStrategy",
            "triggers",
        },
        {"jobTargetRef", "triggers"},
        "ScaledJob.spec",
    )
    errors: list[str] = []
    check_model(spec["jobTargetRef"], kubernetes_client.V1JobSpec, "jobTargetRef", errors)
    assert errors == []
    assert spec["scalingStrategy"]["strategy"] in ("default", "custom", "accurate", "eager")
    container = batch_pod_checks(spec["jobTargetRef"]["template"]["spec"], "keda-scaledjob.yaml")
    args = parse_streamer(container["args"], container_env(container))
    assert args.join and args.redis and args.idle > 0
    assert args.allow_input and args.allow_output, "a runner pod reads and writes only where it is allowed"
    [trigger] = spec["triggers"]
    check_keys(trigger, TRIGGER_FIELDS, {"type", "metadata"}, "trigger")
    metadata = trigger["metadata"]
    check_keys(metadata, REDIS_STREAMS_METADATA, {"stream", "consumerGroup"}, "redis-streams metadata")
    assert all(isinstance(value, str) for value in metadata.values())
    assert metadata["stream"] == Keys(args.namespace).submitted and metadata["consumerGroup"] == RUNNER_GROUP
    assert metadata["lagCount"] == "1"
    by_name("TriggerAuthentication", trigger["authenticationRef"]["name"])  # the one deploy/k8s applies
    secret = load_documents(SECRET)[0]
    ref = next(item for item in container["env"] if item["name"] == "STREAMER_REDIS")["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_images_carry_the_cloud_extra():
    for path in DOCKERFILES:
        builder = dict(instruction for instruction in stages(path)[0] if instruction[0] == "ARG")
        assert builder["ARG"].replace('"', "") == "EXTRAS=cloud", path.name
