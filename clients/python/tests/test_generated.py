"""The committed generated code is exactly what clients/python/generate makes."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[1]
COMMITTED = CLIENT_DIR / "src" / "promoflow" / "_gen" / "v1"


def _codegen():
    spec = importlib.util.spec_from_file_location("promoflow_codegen", CLIENT_DIR / "tools" / "codegen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    _codegen().generate(tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    committed = sorted(p.name for p in COMMITTED.iterdir() if p.is_file())
    assert fresh == committed, "generated file set differs: run clients/python/generate"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, COMMITTED, fresh, shallow=False)
    assert not mismatch and not errors, f"stale generated files {mismatch + errors}: run clients/python/generate"


def test_generated_imports_are_package_relative() -> None:
    for path in COMMITTED.glob("*.py*"):
        text = path.read_text()
        assert "from promoflow.v1" not in text and "import promoflow.v1" not in text, path


def test_installed_package_uses_generated_code() -> None:
    import promoflow
    from promoflow import pb

    assert pb.Release.DESCRIPTOR.full_name == "promoflow.v1.Release"
    assert promoflow.Client and promoflow.AsyncClient
