"""The Kubernetes manifests (k8s/), checked offline: the overlays render with `kubectl kustomize`, every
object validates against the Kubernetes schemas that kubernetes-validate ships, and every workload runs
non-root on a read-only filesystem with probes and resource limits."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "k8s"
KUBERNETES_VERSION = "1.32.0"  # EKS's supported line at the time of writing
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not installed here")
WORKLOADS = {"Deployment", "Job", "CronJob"}


def render(target: str) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(K8S / target)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def base_files() -> list[dict]:
    """The base's objects as written (without kubectl: no kustomize rendering, the files themselves)."""
    docs = []
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def pod_spec(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def check_schema(obj: dict) -> None:
    if obj["apiVersion"].startswith("external-secrets.io/"):
        # A custom resource (the External Secrets Operator): not in Kubernetes' schemas; its shape here.
        spec = obj["spec"]
        assert spec["secretStoreRef"]["name"] and spec["target"]["name"] == "kiosk-secrets"
        assert all(item["secretKey"] and item["remoteRef"]["key"] for item in spec["data"])
        return
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", ["overlays/staging", "overlays/production"])
@needs_kubectl
def test_each_overlay_renders_and_every_object_is_valid(target):
    objects = render(target)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
            "ExternalSecret", "Job", "NetworkPolicy", "ServiceAccount", "Namespace"} <= kinds  # fmt: skip
    namespace = next(obj["metadata"]["name"] for obj in objects if obj["kind"] == "Namespace")
    for obj in objects:
        check_schema(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
    assert not [obj for obj in objects if obj["kind"] == "Secret"]  # secrets come from AWS, never from here
    images = {c["image"] for obj in objects if obj["kind"] in WORKLOADS for c in pod_spec(obj)["containers"]}
    assert len(images) == 1 and images.pop().startswith("123456789012.dkr.ecr.")  # one image, from ECR


def test_the_base_files_are_valid_without_kubectl():
    for obj in base_files():
        check_schema(obj)


def test_every_workload_is_non_root_read_only_limited_and_probed():
    workloads = [obj for obj in base_files() if obj["kind"] in WORKLOADS]
    assert {obj["metadata"]["name"] for obj in workloads} >= {"kiosk-web", "kiosk-worker", "kiosk-migrate"}
    for obj in workloads:
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "kiosk"
        for container in spec["containers"]:
            where = f"{obj['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            if obj["kind"] == "Deployment":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, f"{where} has no {probe}"
    web = next(obj for obj in workloads if obj["metadata"]["name"] == "kiosk-web")
    container = pod_spec(web)["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = next(obj for obj in workloads if obj["metadata"]["name"] == "kiosk-worker")
    assert pod_spec(worker)["containers"][0]["livenessProbe"]["exec"]["command"][-2:] == ["worker_status", "--local"]


def test_the_pods_assume_their_aws_role_and_autoscale():
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in base_files()}
    account = objects[("ServiceAccount", "kiosk")]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    for name in ("kiosk-web", "kiosk-worker"):
        hpa = objects[("HorizontalPodAutoscaler", name)]
        assert hpa["spec"]["scaleTargetRef"]["name"] == name and hpa["spec"]["minReplicas"] >= 2
        assert "replicas" not in objects[("Deployment", name)]["spec"]  # the autoscaler decides
        assert objects[("PodDisruptionBudget", name)]["spec"]["minAvailable"] >= 1
    ingress = objects[("Ingress", "kiosk")]
    assert (
        ingress["spec"]["tls"]
        and '"HTTPS": 443' in ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]
    )
