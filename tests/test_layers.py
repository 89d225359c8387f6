"""Imports point down only: data stands alone, the model does not need training code."""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_after(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (f"import json, sys, {imports}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    return json.loads(out)


def test_data_imports_nothing_else_from_lebm():
    loaded = _loaded_after("lebm.data", ("lebm",))
    assert [m for m in loaded if not m.startswith("lebm.data")] == ["lebm"]


def test_sampling_and_models_do_not_import_methods_or_training():
    loaded = _loaded_after("lebm.sampling, lebm.priors, lebm.models",
                           ("lebm.train", "lebm.methods", "lebm.cli", "lebm.config"))
    assert loaded == []
