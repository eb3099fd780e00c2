"""The repository stands on its own: nothing points at files outside it (a clone has only the repository)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def test_no_file_points_at_a_shared_folder_outside_the_repository():
    # Split so that this file does not match itself.
    needles = ("../" + "shared/", "shared/" + "PROTOCOL.md", "shared/" + "TRAPS.md")
    offenders = []
    for path in tracked_files():
        if not path.is_file() or path.suffix in {".png", ".jpg", ".ico", ".woff", ".woff2"}:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if any(needle in text for needle in needles):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_protocol_document_is_in_the_repository_and_linked_from_the_readme():
    assert (ROOT / "docs" / "protocol.md").is_file()
    assert "(docs/protocol.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
