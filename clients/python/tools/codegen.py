"""Generate the protobuf / gRPC Python modules of promoflow from ../../proto.

Usage: python tools/codegen.py [OUT_DIR]

OUT_DIR defaults to src/promoflow/_gen/v1. The modules are produced by
grpcio-tools (protoc with the python, pyi and grpc_python plugins) and their
imports of each other are rewritten to be package-relative
(`from promoflow.v1 import x_pb2` -> `from . import x_pb2`), so the generated
code lives inside the `promoflow` package without a top-level `promoflow.v1`.

tests/test_generated.py runs `generate()` into a temporary directory and
fails when the result differs from the committed files.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT_DIR = HERE.parent
REPO_ROOT = CLIENT_DIR.parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "promoflow" / "v1"
DEFAULT_OUT = CLIENT_DIR / "src" / "promoflow" / "_gen" / "v1"

INIT_TEXT = '"""Generated code of package promoflow.v1 (do not edit; run clients/python/generate)."""\n'

_IMPORT_RE = re.compile(r"^from promoflow\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted(PROTO_PACKAGE_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Generate into out_dir (created; existing generated files replaced)."""
    from grpc_tools import protoc  # imported late: only needed to generate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="promoflow-gen-") as tmp:
        tmp_path = Path(tmp)
        well_known = Path(protoc.__file__).resolve().parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
        ] + [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed with status {rc}")
        produced = sorted((tmp_path / "promoflow" / "v1").iterdir())
        for old in out_dir.glob("*_pb2*.py*"):
            old.unlink()
        written = []
        for src in produced:
            text = src.read_text(encoding="utf-8")
            text = _IMPORT_RE.sub("from . import ", text)
            dst = out_dir / src.name
            dst.write_text(text, encoding="utf-8")
            written.append(dst)
    (out_dir / "__init__.py").write_text(INIT_TEXT, encoding="utf-8")
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    files = generate(out)
    print(f"generated {len(files)} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
