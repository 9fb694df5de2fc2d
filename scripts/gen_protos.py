"""Generate the Python stubs of protos/ into src/switchyard/gen/.

The generated modules are committed (as grpc's own projects do) so that a plain clone
runs without a code generator; `make gen-check` fails when they are stale.

protoc names modules after the proto package (`switchyard.v1`), which would collide with
this project's own `switchyard` package, so imports between generated modules are
rewritten to `switchyard.gen.v1`. The descriptors themselves keep the proto package name
`switchyard.v1`, which is what clients and reflection see.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
TARGET = ROOT / "src" / "switchyard" / "gen"

_IMPORT_FROM = re.compile(r"^from switchyard\.v1 import", re.MULTILINE)
_IMPORT_MODULE = re.compile(r"^import switchyard\.v1\.", re.MULTILINE)
_QUALIFIED = re.compile(r"(?<![\w.'\"])switchyard\.v1\.(\w+_pb2)")


def _rewrite(path: Path) -> None:
    text = path.read_text()
    text = _IMPORT_FROM.sub("from switchyard.gen.v1 import", text)
    text = _IMPORT_MODULE.sub("import switchyard.gen.v1.", text)
    if path.suffix == ".pyi":
        text = _QUALIFIED.sub(r"switchyard.gen.v1.\1", text)
    path.write_text(text)


def _plugin(name: str) -> str:
    """Find a protoc plugin next to the running interpreter (the virtualenv's bin)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev dependencies (make install)")
    return found


def generate(target: Path) -> None:
    """Run protoc over every proto under protos/ and write the stubs to `target`."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        generated = Path(tmp) / "switchyard" / "v1"
        if target.exists():
            shutil.rmtree(target)
        (target / "v1").mkdir(parents=True)
        (target / "__init__.py").write_text(
            '"""Generated gRPC stubs: do not edit (see scripts/gen_protos.py)."""\n'
        )
        (target / "v1" / "__init__.py").write_text("")
        for path in sorted(generated.iterdir()):
            if path.suffix in {".py", ".pyi"}:
                dest = target / "v1" / path.name
                shutil.copy(path, dest)
                _rewrite(dest)


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "gen"
            generate(fresh)
            stale = [
                str(p.relative_to(fresh))
                for p in sorted(fresh.rglob("*"))
                if p.is_file()
                and (
                    not (TARGET / p.relative_to(fresh)).exists()
                    or (TARGET / p.relative_to(fresh)).read_bytes() != p.read_bytes()
                )
            ]
            extra = [
                str(p.relative_to(TARGET))
                for p in sorted(TARGET.rglob("*.py*"))
                if p.is_file() and not (fresh / p.relative_to(TARGET)).exists()
            ]
            if stale or extra:
                print("generated stubs are stale; run `make gen`:", *stale, *extra, sep="\n  ")
                return 1
        print("generated stubs are up to date")
        return 0
    generate(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
