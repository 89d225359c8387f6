"""The README's examples run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lebm.config import build_config
from lebm.train import Trainer

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 2})
    Trainer(cfg, Path("runs/demo")).fit()  # stands in for `make demo`
    blocks = _blocks("python")
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert Path("runs/my-model/model.safetensors").is_file()


def test_readme_states_the_two_commands_first():
    text = README.read_text()
    first_block = _blocks("bash")[0]
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")
    assert text.index("make demo") < text.index("## Command line")


@pytest.mark.slow
def test_readme_cli_examples_run(tmp_path):
    lines = [ln for ln in _blocks("bash")[1].replace("\\\n", " ").splitlines() if ln.strip()]
    for line in lines:
        cmd = shlex.split(line.split("#")[0])
        assert cmd[0] == "lebm"
        res = subprocess.run([sys.executable, "-m", "lebm", *cmd[1:], *(
            ["--no-progress"] if cmd[1] in ("train", "resume") else [])],
            cwd=tmp_path, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, (line, res.stderr[-2000:])
