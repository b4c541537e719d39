"""pip-audit over the pinned requirements, for `make lint`: a known vulnerability fails, missing data is said.

pip-audit asks PyPI (https://pypi.org/pypi/<name>/<version>/json) about each pin. Offline, or behind a mirror
that serves only the package index, it gets connection errors or 404s; on a 404 it skips the pin ("not found
on PyPI") and still prints "No known vulnerabilities found" with exit status 0. So this reads pip-audit's JSON
report and tells the cases apart:

- a pin with a known vulnerability: listed, exit status 1;
- no vulnerability data for some or all pins: "NOT checked", exit status 0 (an unreachable data source is no
  finding), or 1 with PIP_AUDIT_REQUIRE_DATA=1 (CI online, where missing data means something is wrong);
- every pin checked, none vulnerable: exit status 0.

Usage: scripts/pip_audit.py -r requirements.txt [-r ...] [any pip-audit option, e.g. -s osv, --ignore-vuln ID]
PIP_AUDIT names the pip-audit to run (default: .venv/tools/bin/pip-audit).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNAVAILABLE = "pip-audit: vulnerability data unavailable (offline?) — NOT checked"
# How an unreachable data source shows on pip-audit's stderr: it has no exit status of its own for it.
NETWORK_SIGNS = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "NameResolutionError",
    "Max retries exceeded",
    "Could not connect",
    "network may be blocking",
    "ServiceError",
    "SSLError",
    "ProxyError",
)


def main(args: list[str]) -> int:
    pip_audit = os.environ.get("PIP_AUDIT") or str(ROOT / ".venv" / "tools" / "bin" / "pip-audit")
    require_data = os.environ.get("PIP_AUDIT_REQUIRE_DATA", "") not in ("", "0")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "pip-audit.json"
        # Exact pins, no resolution: nothing is built or installed, only the vulnerability service is asked.
        command = [pip_audit, "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        command += ["--format", "json", "--output", str(report), *args]
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        text = report.read_text() if report.exists() else ""

    if not text.strip():
        if any(sign in run.stderr for sign in NETWORK_SIGNS):
            reason = [line for line in run.stderr.splitlines() if line.strip()][-1].strip()[:200]
            print(f"{UNAVAILABLE}: {reason}")
            return 1 if require_data else 0
        sys.stderr.write(run.stderr)
        print(f"pip-audit failed (exit status {run.returncode}) and wrote no report", file=sys.stderr)
        return run.returncode or 2

    dependencies = json.loads(text).get("dependencies", [])
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    checked = len(dependencies) - len(skipped)

    if vulnerable:
        count = sum(len(dep["vulns"]) for dep in vulnerable)
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                names = " / ".join([vuln["id"], *vuln.get("aliases", [])])
                fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
                print(f"  {dep['name']}=={dep['version']}: {names} (fixed in: {fixed})")
        print(f"pip-audit: {count} known vulnerabilities in {len(vulnerable)} pinned packages — FAILED")
        return 1
    if not dependencies:
        print("pip-audit: no requirements to audit (give -r FILE)", file=sys.stderr)
        return 2
    if skipped:
        names = ", ".join(dep["name"] for dep in skipped)
        if checked == 0:
            print(f"{UNAVAILABLE}: no data for any of the {len(skipped)} pins ({skipped[0]['skip_reason']})")
        else:
            print(
                f"pip-audit: no known vulnerabilities in {checked} pins; {len(skipped)} NOT checked (no data): {names}"
            )
        return 1 if require_data else 0
    print(f"pip-audit: no known vulnerabilities in the {checked} pinned packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
