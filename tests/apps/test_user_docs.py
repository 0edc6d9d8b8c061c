"""The user guide's walkthroughs run as written: the firewall's shell commands, and the pytest
plugin's test file in a project of its own; and the plugin leaves pytest working for a project
without pytest-asyncio."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import venv
from pathlib import Path

from aioixy.testing.pytest_plugin import NEEDS_ASYNCIO

from .procs import ROOT

GUIDE = ROOT / "docs" / "user-guide.md"


def _block(heading: str, lang: str, after: str = "") -> str:
    """The first ```lang block of the section `heading` (after the text `after`)."""
    text = GUIDE.read_text()
    section = text[text.index(heading):]
    section = section[section.index(after):] if after else section
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _checkout(tmp: Path) -> Path:
    """A directory laid out as the guide assumes (a checkout with its .venv): the commands run
    from there as written, with this interpreter's environment as the .venv."""
    (tmp / ".venv").symlink_to(Path(sys.prefix))
    (tmp / "examples").symlink_to(ROOT / "examples")
    return tmp


def test_the_firewall_walkthrough_runs_as_written(tmp_path):
    script = _block("### A firewall", "sh")
    assert ".venv/bin/python examples/firewall.py" in script and "python -c" not in script.replace(
        ".venv/bin/python -c", "")
    port = _free_port()  # 8080 may be taken on a shared machine: the only change
    script = script.replace("8080", str(port))
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=120, cwd=_checkout(tmp_path),
                       env={k: v for k, v in os.environ.items() if k != "AIOIXY_HTTP_TOKEN"})
    assert r.returncode == 0, r.stdout + r.stderr
    # curl prints its JSON without a newline: split the output into its JSON documents
    docs, text, dec = [], r.stdout, json.JSONDecoder()
    i = 0
    while (i := text.find("{", i)) >= 0:
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)
    answers = [d for d in docs if "t" not in d]  # the lab prints {"t": ...} every 0.25 s
    added, listed, removed, summary = answers
    assert added["id"] == 1 and added["action"] == "deny" and added["dport"] == 53
    assert [rule["id"] for rule in listed["rules"]] == [1]
    assert removed["id"] == 1
    assert summary["pools_whole"] is True  # the lab ended on SIGTERM with its summary


def _run_pytest(project: Path, python: str, *args: str) -> subprocess.CompletedProcess[str]:
    (project / "pytest.ini").write_text("[pytest]\n")  # the project's own root, not ours
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, timeout=300, cwd=project, env=env)


def test_the_pytest_plugin_snippet_runs_in_a_users_project(tmp_path):
    (tmp_path / "test_my_firewall.py").write_text(
        _block("## Testing your network function", "python"))
    r = _run_pytest(tmp_path, sys.executable)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def _env_without_pytest_asyncio(tmp: Path) -> str:
    """A virtual environment holding this one's packages except pytest-asyncio (linked, not
    copied: the editable aioixy and its entry points included). Returns its python."""
    env = tmp / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python*/site-packages"))
    ours = next(Path(p) for p in sys.path if p.endswith("site-packages")
                and Path(p, "pytest").is_dir())
    for entry in ours.iterdir():
        if entry.name.startswith("pytest_asyncio"):
            continue
        if not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return str(env / "bin" / "python")


def test_pytest_runs_without_pytest_asyncio_and_the_fixture_says_what_is_missing(tmp_path):
    python = _env_without_pytest_asyncio(tmp_path)
    probe = subprocess.run([python, "-c", "import aioixy, pytest; "
                            "import importlib.util as u; print(u.find_spec('pytest_asyncio'))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr  # really gone
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_plain.py").write_text(
        "def test_unrelated():\n    assert 1 + 1 == 2\n\n\n"
        "def test_wants_the_pair(aioixy_pair):\n    pass\n")
    r = _run_pytest(project, python)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out  # one test failed; not 3 (internal error) or 4 (usage)
    assert "1 passed" in r.stdout and "1 error" in r.stdout, out
    assert NEEDS_ASYNCIO in out
    assert "ModuleNotFoundError" not in out
