"""Fetch the console's vendored browser files from the npm registry, as
`src/switchyard/console/static/vendor/vendored.json` lists them.

The console serves htmx from its own package, so that `make run` needs no Node.js and
the browser loads nothing from elsewhere (its content security policy admits the
console's own scripts only). The list names each file's npm package, version and
SHA-256; `tests/console/test_assets.py` checks the committed files against it. To move
to a new version: change the version in the list, run this script, and commit the file
and the checksum it prints into the list.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src/switchyard/console/static/vendor"


def main() -> int:
    listed = json.loads((VENDOR / "vendored.json").read_text())
    for name, entry in listed.items():
        spec = f"{entry['package']}@{entry['version']}"
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(
                ["npm", "pack", spec, "--silent", "--pack-destination", scratch], check=True
            )
            (archive,) = Path(scratch).glob("*.tgz")
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            shutil.copyfile(Path(scratch) / "package" / entry["path"], VENDOR / name)
            shutil.copyfile(Path(scratch) / "package" / "LICENSE", VENDOR / f"{name}.LICENSE")
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        print(f"{name}: {spec} sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
