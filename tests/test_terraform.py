"""The AWS infrastructure (terraform/), checked offline: no provider can be downloaded here, so no `init`:
`terraform fmt`, a parse with python-hcl2 and what it must say, and checkov with no failed check (each
exception justified inline with #checkov:skip)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

BASE = Path(__file__).resolve().parent.parent
TERRAFORM = BASE / "terraform"
# make's own virtualenv for checkov (its many pins stay out of the app's): .venv/tools/bin/checkov
CHECKOV = Path(sys.executable).parent.parent / "tools" / "bin" / "checkov"
if not CHECKOV.exists():
    CHECKOV = Path(shutil.which("checkov") or "/nonexistent/checkov")


def _plain(value):
    """python-hcl2 keeps HCL's quotes: '"main"' -> 'main', recursively."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k not in ("__comments__", "__is_block__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def blocks(kind: str) -> dict:
    """Every `kind` block (resource, variable, output, module) of every file: {"type.name" or name: body}."""
    found = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        for entry in _plain(hcl2.load(path.open())).get(kind, []):
            for key, body in entry.items():
                if kind in ("resource", "data"):
                    for name, inner in body.items():
                        found[f"{key}.{name}"] = inner
                else:
                    found[key] = body
    return found


def test_terraform_fmt_finds_nothing_to_change():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here")
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], capture_output=True)
    assert result.returncode == 0, result.stdout.decode()


def test_every_variable_and_output_is_documented():
    for kind in ("variable", "output"):
        undocumented = [name for name, body in blocks(kind).items() if not body.get("description")]
        assert undocumented == [], kind


def test_the_database_is_private_encrypted_backed_up_and_its_password_managed_by_rds():
    db = blocks("resource")["aws_db_instance.main"]
    assert db["engine"] == "mysql" and str(db["engine_version"]).startswith("8.")
    assert db["publicly_accessible"] is False and db["storage_encrypted"] is True
    assert db["manage_master_user_password"] is True and "password" not in db
    assert db["multi_az"] == "${var.db_multi_az}" and blocks("variable")["db_multi_az"]["default"] is True
    assert blocks("variable")["db_backup_retention_days"]["default"] >= 7
    assert db["deletion_protection"] == "${var.db_deletion_protection}" and db["skip_final_snapshot"] is False
    params = {p["name"]: p["value"] for p in blocks("resource")["aws_db_parameter_group.mysql"]["parameter"]}
    assert params["require_secure_transport"] == "1" and params["character_set_server"] == "utf8mb4"


def test_nothing_is_open_to_the_internet():
    """The load balancer (made by the AWS Load Balancer Controller from the Ingress) is the only public door."""
    text = "\n".join(path.read_text() for path in TERRAFORM.glob("*.tf"))
    assert "0.0.0.0/0" not in text and "::/0" not in text
    rules = {k: v for k, v in blocks("resource").items() if "security_group" in k and "rule" in k}
    assert rules and all("cidr_ipv4" not in rule for rule in rules.values())  # only from other security groups
    eks = blocks("module")["eks"]
    assert eks["cluster_endpoint_public_access_cidrs"] == "${var.cluster_admin_cidrs}"
    assert blocks("variable")["cluster_admin_cidrs"]["default"] == []  # private API endpoint by default


def test_the_secrets_the_pods_read_are_the_ones_terraform_makes():
    made = {body["name"] for key, body in blocks("resource").items() if key.startswith("aws_secretsmanager_secret.")}
    external = (BASE / "k8s" / "base" / "externalsecret.yaml").read_text()
    asked = {line.split("key: ")[1].split(",")[0] for line in external.splitlines() if "remoteRef" in line}
    assert asked == made == {"kiosk/django", "kiosk/mercadopago", "kiosk/database"}


def test_the_state_backend_is_remote_with_an_example():
    assert "backend" in str(blocks("terraform"))
    example = (TERRAFORM / "backend.hcl.example").read_text()
    assert "bucket" in example and "encrypt      = true" in example


@pytest.mark.parametrize(("directory", "frameworks"), [("terraform", "terraform"), ("k8s", "kubernetes,kustomize")])
def test_checkov_finds_no_failed_check(directory, frameworks):
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed (make test installs it in .venv/tools)")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(BASE / directory), "--framework", frameworks, "--skip-download", "--quiet",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    assert sum(report["summary"]["passed"] for report in reports) > 50  # it really looked
