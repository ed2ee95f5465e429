"""The CI workflow users copy: actionlint passes it, and every command its steps run exists in this package."""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess

import pytest
import yaml

import compile as compile_entry
from mlops import cli
from tests.conftest import ROOT, require_tool

WORKFLOW = ROOT / ".github" / "workflows" / "model-pipeline.yml"
OPERATORS = {";", "&&", "||", "|", "&", ">", ">>", "<", "(", ")", "2>&1"}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps():
    for name, job in workflow()["jobs"].items():
        for step in job["steps"]:
            yield name, step


def commands(script: str):
    """The simple commands of a bash script, as argument lists (continuation lines joined, operators and
    redirections cut off, leading VAR=value assignments dropped)."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        command, redirected = [], False
        for token in [*lexer, ";"]:
            if token in OPERATORS or set(token) <= set(";&|<>()"):
                while command and re.fullmatch(r"\w+=.*", command[0]):
                    command.pop(0)
                if command and not redirected:
                    yield command
                command, redirected = ([], True) if token in (">", ">>", "<") else ([], False)
            elif redirected:  # the file a redirection names, then whatever follows it
                redirected = False
            elif not command and token in ("then", "do", "else", "{"):
                continue
            else:
                command.append(token)


def parse(prog: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return prog.parse_args(args)
    except SystemExit:
        pytest.fail(f"{' '.join(args)!r} is not a command of {prog.prog}: {err.getvalue().strip()}", pytrace=False)


def package_commands() -> list[tuple[str, list[str]]]:
    found = []
    for job, step in steps():
        for command in commands(step.get("run", "")):
            if command[0] == "mlops" or command[:2] == ["python", "compile.py"]:
                found.append((job, command))
    return found


def test_actionlint_passes_the_workflow_and_catches_a_broken_one(tmp_path):
    actionlint = require_tool("actionlint", "the dev extra's actionlint wheel")
    ok = subprocess.run([actionlint, "-no-color", str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout == "", ok.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs.image.outputs.version", "needs.image.outputs.tag", 1))
    bad = subprocess.run([actionlint, "-no-color", str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1 and 'property "tag" is not defined' in bad.stdout


def test_every_mlops_and_compile_command_of_the_workflow_exists():
    found = package_commands()
    mlops, compile_py = cli.parser(), compile_entry.parser()
    seen = set()
    for job, command in found:
        if command[0] == "mlops":
            args = parse(mlops, command[1:])
            seen.add((job, " ".join(command[1:3]), getattr(args, "func").__name__))
        else:
            parse(compile_py, command[2:])
            seen.add((job, "compile.py", ""))
    assert seen == {("validate-data", "data generate", "cmd_data_generate"),
                    ("validate-data", "data validate", "cmd_data_validate"),
                    ("train", "run training", "cmd_run_training"),
                    ("image", "compile.py", ""),
                    ("publish", "upload --host", "cmd_upload"),
                    ("publish", "submit training", "cmd_submit"),
                    ("publish", "schedule drift-check", "cmd_schedule")}


def test_a_misspelt_flag_is_caught():
    script = 'mlops upload --host "$KFP_HOST" --compiled-dir compiled --verison "$VERSION" > out.txt'
    (command,) = commands(script)
    assert command == ["mlops", "upload", "--host", "$KFP_HOST", "--compiled-dir", "compiled", "--verison",
                       "$VERSION"]
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --verison"):
        parse(cli.parser(), command[1:])


def test_pinned_least_privilege_and_secrets_only_through_secrets():
    doc, text = workflow(), WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert {name for name, _, _ in uses} == {"actions/checkout", "actions/setup-python", "docker/setup-buildx-action",
                                             "docker/login-action", "docker/build-push-action",
                                             "actions/upload-artifact", "actions/download-artifact"}
    for name, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref) and re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (name, ref)
    assert doc["permissions"] == {"contents": "read"}
    assert {job: spec.get("permissions") for job, spec in doc["jobs"].items() if "permissions" in spec} == \
        {"image": {"contents": "read", "packages": "write"}}
    assert doc["concurrency"]["group"].endswith("${{ github.ref }}")
    assert doc["jobs"]["publish"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert set(doc["jobs"]["publish"]["needs"]) == {"test", "validate-data", "train", "image"}
    for _, step in steps():  # no expression is pasted into a script (injection); values come in through env
        assert "${{" not in step.get("run", ""), step
    secrets = set(re.findall(r"secrets\.(\w+)", text))
    assert secrets == {"KFP_HOST", "KFP_TOKEN", "REGISTRY_USERNAME", "REGISTRY_PASSWORD", "GITHUB_TOKEN"}
    assert not re.search(r"(?i)(token|password)\s*:\s*[\"']?[A-Za-z0-9_\-]{12,}", text.replace("${{", ""))
    paths = {"components/**", "pipelines/**", "schemas/**", "configs/**", "mlops/**", "compile.py", "pyproject.toml",
             "requirements*.lock"}
    for event in ("push", "pull_request"):
        assert paths <= set(doc[True][event]["paths"])  # PyYAML reads the key `on` as True
