"""The repository stands on its own (a clone has only the repository) and its README serves a newcomer:
nothing points outside it, every link resolves, every setting is in the configuration table."""

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def test_no_file_points_at_a_shared_folder_outside_the_repository():
    # Split so that this file does not match itself. The brief's contract by its
    # file name too, with or without a folder: the project's own is docs/protocol.md.
    needles = ("../" + "shared/", "PROTOCOL" + ".md", "TRAPS" + ".md")
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


# --- README configuration table ---------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_settings(section: str) -> dict[str, str]:
    """Setting name -> its default cell, for every row of the markdown tables in ``section``."""
    found = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            found[name] = cells[1] if len(cells) > 1 else ""
    return found


def project_environment_settings() -> set[str]:
    """Every environment variable Dexter's own modules read by name (dexter/*.py), from their source."""
    readers = {"env_bool", "env_int", "env_float", "env_list", "getenv"}
    names = set()
    for path in (ROOT / "dexter").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                environ_get = called == "get" and ast.unparse(func).endswith("environ.get")
                reader = called in readers or (isinstance(func, ast.Attribute) and ast.unparse(func.value) == "env")
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                environ_get, reader, key = True, False, node.slice
            else:
                continue
            if (environ_get or reader) and isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def test_every_setting_is_in_the_readme_configuration_table_with_its_default():
    from realtime.conf_table import DEFAULTS

    table = table_settings(readme_section("Configuration"))
    wanted = set(DEFAULTS) | project_environment_settings()
    assert len(wanted) > 40  # the readers above found the settings at all
    assert sorted(wanted - set(table)) == []
    assert sorted(name for name in wanted if not table[name]) == []


def shown_default(value) -> str | None:
    """How a table writes a real-time setting's default: `true`, `30`, `0.25`, `600/min` (lists: in words)."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return None if isinstance(value, list) else f"`{value}`"


def test_the_tables_give_the_real_time_settings_defaults_that_conf_has():
    from realtime.conf_table import DEFAULTS

    wrong = []
    for where, table in [
        ("README.md", table_settings(readme_section("Configuration"))),
        ("docs/protocol.md", table_settings(protocol_section_9())),
    ]:
        for name, default in DEFAULTS.items():
            shown = shown_default(default)
            if name in table and shown is not None and shown not in table[name]:
                wrong.append(f"{where} {name}: {table[name]!r}, conf has {shown}")
    assert wrong == []


def protocol_section_9() -> str:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    start = text.index("\n## 9. ")
    return text[start : text.index("\n## ", start + 1)]


def test_every_client_visible_realtime_setting_is_in_protocol_section_9():
    from realtime.conf_table import DEFAULTS, SERVER_SIDE

    listed = set(table_settings(protocol_section_9()))
    assert sorted(set(DEFAULTS) - SERVER_SIDE - listed) == []
    assert SERVER_SIDE <= set(DEFAULTS)


# --- README for a newcomer ----------------------------------------------------------


def test_the_readme_starts_with_make_run_and_make_test():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    fence = lines.index("```sh")
    commands = [line.split("#")[0].strip() for line in lines[fence + 1 : lines.index("```", fence)]]
    assert fence < 5 and commands == ["make run", "make test"]


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def without_code(path: Path) -> str:
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file."""
    headings = re.findall(r"^#+ (.+)$", without_code(path), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_and_image_in_the_docs_resolves_to_a_file_and_heading():
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]:
        for target in LINK.findall(without_code(doc)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            file = doc.parent / path if path else doc
            if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_shows_pictures_of_the_pages():
    images = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"docs/dashboard.png", "docs/ops.png"} <= set(images)
    assert all((ROOT / image).stat().st_size > 10_000 for image in images)


def test_the_readme_has_what_a_newcomer_looks_for():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+)$", text, flags=re.M))
    wanted = {"Configuration", "Protocol summary", "Adding it to your own project", "Scaling out"}
    wanted |= {"Benchmark", "Reliability"}
    assert sorted(wanted - headings) == []
    assert "(docs/integrating.md)" in text and "(docs/protocol.md)" in text
