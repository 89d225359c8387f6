"""Imports point down only: data stands alone (DESIGN.md, Layers)."""

from __future__ import annotations

import subprocess
import sys


def test_data_imports_nothing_else_from_lebm():
    code = ("import sys, lebm.data; "
            "print(sorted(m for m in sys.modules if m.startswith('lebm') "
            "and not m.startswith('lebm.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "['lebm']", out  # only the package root (version, lazy `load`)


def test_sampling_does_not_import_methods_or_training():
    code = ("import sys, lebm.sampling, lebm.priors, lebm.models; "
            "print(sorted(m for m in sys.modules if m.startswith(('lebm.train', "
            "'lebm.methods', 'lebm.cli', 'lebm.config'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", out
