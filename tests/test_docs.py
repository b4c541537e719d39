"""The README and docs/ link to each other by file and heading: every such link must lead somewhere."""

import re
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent
PAGES = [BASE / "README.md", *sorted((BASE / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_local_link_leads_to_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


def test_the_documented_signature_check_is_the_one_the_tests_use():
    """The verification snippet an integrator copies from docs/events.md is, line for line, the function that
    checks every delivery in the webhook tests (scripts/webhook_listener.py)."""
    page = (BASE / "docs" / "events.md").read_text()
    snippet = page.split("## Verifying a delivery", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    listener = (BASE / "scripts" / "webhook_listener.py").read_text()
    function = snippet[snippet.index("def verify(") :]
    assert function in listener


def test_docs_events_show_an_example_of_every_event_type():
    """Every type the code can emit has its section with a JSON example in docs/events.md, and no other."""
    import json

    from kiosk.events.services import EVENT_TYPES

    page = (BASE / "docs" / "events.md").read_text()
    examples = page.split("## Examples of each type", 1)[1]
    shown = {}
    for section in examples.split("### `")[1:]:
        name, rest = section.split("`", 1)
        shown[name] = json.loads(rest.split("```json\n", 1)[1].split("```", 1)[0])
    assert set(shown) == set(EVENT_TYPES)
    assert all(envelope["type"] == name and envelope["version"] == 1 for name, envelope in shown.items())


NAMED_TEST = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_a_page_names_as_proof_exists(page):
    """docs/security.md and the others prove their claims by naming tests: a renamed or deleted test must not
    leave a claim pointing at nothing."""
    missing = []
    for path, name in set(NAMED_TEST.findall(page.read_text())):
        source = BASE / path
        if not source.exists() or not re.search(rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert sorted(missing) == []
