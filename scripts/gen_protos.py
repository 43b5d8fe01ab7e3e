"""Regenerate packages/contracts from proto/ (the only contract source).

python scripts/gen_protos.py          # rewrite packages/contracts/src/postline/v1
python scripts/gen_protos.py --check  # exit 1 if the checked-in code is stale (CI)
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "packages" / "contracts" / "src"
PACKAGE = Path("postline") / "v1"
INIT = '"""Generated protobuf and gRPC code for postline.v1 (see scripts/gen_protos.py)."""\n'


def generate(out_root: Path) -> None:
    # protoc finds the mypy-protobuf plugins next to the interpreter running this script.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_root / PACKAGE / "__init__.py").write_text(INIT)
    (out_root / PACKAGE / "py.typed").write_text("")


def stale_files(expected: Path, actual: Path) -> list[str]:
    want = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    have = {
        p.relative_to(actual)
        for p in actual.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    diff = sorted(str(p) for p in want ^ have)
    diff += sorted(
        str(p) for p in want & have if not filecmp.cmp(expected / p, actual / p, shallow=False)
    )
    return diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        target = OUT_ROOT / PACKAGE
        if check:
            stale = stale_files(fresh, target) if target.exists() else ["(missing)"]
            if stale:
                print("packages/contracts is stale; run `make protos`:", *stale, sep="\n  ")
                return 1
            print("packages/contracts is up to date")
            return 0
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(fresh, target)
    print(f"generated {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
