"""Running the Autobahn testsuite's fuzzing client (``wstest -m fuzzingclient``) from Python 3.

autobahntestsuite runs only under Python 2.7. ``make autobahn`` installs it with
``pip install --target .autobahn/lib`` (tests/conformance/requirements-py27.txt
pins it and everything it pulls in). ``--target`` leaves namespace packages
(``zope.interface``) to ``.pth`` files that only ``site.addsitedir`` reads, so
wstest is started through a one-line shim instead of the ``bin/wstest`` script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AUTOBAHN_DIR = Path(os.environ.get("AUTOBAHN_DIR", ROOT / ".autobahn"))
LIB = AUTOBAHN_DIR / "lib"

SHIM = (
    "import site, sys; site.addsitedir(sys.argv[1]); sys.argv = ['wstest'] + sys.argv[2:]; "
    "from autobahntestsuite.wstest import run; run()"
)

# The outcomes wstest gives a case, best first.
OUTCOMES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def python27() -> str | None:
    """The Python 2.7 that runs wstest: AUTOBAHN_PYTHON, pyenv's 2.7.18, or python2.7 on PATH."""
    candidates = [os.environ.get("AUTOBAHN_PYTHON")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates.append(os.path.join(pyenv_root, "versions", "2.7.18", "bin", "python"))
    candidates.append(shutil.which("python2.7"))
    return next((c for c in candidates if c and os.path.exists(c)), None)


def installed() -> bool:
    return python27() is not None and (LIB / "autobahntestsuite").is_dir()


def run_fuzzingclient(
    agents: dict[str, str],
    cases: list[str],
    outdir: Path,
    log_path: Path,
    timeout: float,
    exclude: list[str] | None = None,
) -> dict[str, dict[str, dict]]:
    """Run the cases against every agent (``name: ws url``); returns wstest's index.json, merged.

    One wstest per agent, side by side: most of a run is the fuzzer waiting
    for replies or closes, not CPU.
    """
    with ThreadPoolExecutor(len(agents)) as pool:
        parts = pool.map(
            lambda item: _run_one(item[0], item[1], cases, outdir / item[0], log_path, timeout, exclude or []),
            agents.items(),
        )
        index: dict[str, dict[str, dict]] = {}
        for part in parts:
            index.update(part)
    return index


def _run_one(agent, url, cases, outdir: Path, log_path: Path, timeout: float, exclude) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    spec_path = outdir / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    with open(log_path.with_name(f"{log_path.stem}-{agent}{log_path.suffix}"), "ab") as log:
        subprocess.run(
            [python27(), "-c", SHIM, str(LIB), "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=outdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=True,
        )
    return json.loads((outdir / "index.json").read_text())


def summarize(index: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Per agent and top-level case group: counts of each outcome and the ids not OK.

    A case's outcome is the worse of its ``behavior`` and its ``behaviorClose``.
    """
    out: dict[str, dict[str, dict]] = {}
    for agent, results in index.items():
        groups: dict[str, dict] = defaultdict(lambda: {"counts": Counter(), "not_ok": {}})
        for case_id, result in sorted(results.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
            outcome = worst(result.get("behavior"), result.get("behaviorClose"))
            group = groups[case_id.split(".")[0]]
            group["counts"][outcome] += 1
            if outcome != "OK":
                group["not_ok"][case_id] = outcome
        out[agent] = {g: {"counts": dict(v["counts"]), "not_ok": v["not_ok"]} for g, v in groups.items()}
    return out


def worst(*outcomes: str | None) -> str:
    known = [o for o in outcomes if o]
    ranked = sorted(known, key=lambda o: OUTCOMES.index(o) if o in OUTCOMES else len(OUTCOMES))
    return ranked[-1] if ranked else "FAILED"


def format_summary(summary: dict[str, dict[str, dict]]) -> str:
    lines = []
    for agent, groups in summary.items():
        lines.append(f"{agent}:")
        for group in sorted(groups, key=int):
            counts = groups[group]["counts"]
            text = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
            lines.append(f"  {group}.*: {text}")
            for case_id, outcome in groups[group]["not_ok"].items():
                lines.append(f"      {case_id} {outcome}")
    return "\n".join(lines)
