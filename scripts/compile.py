"""Compile the request path to native code with mypyc (see gateway/native.py).

python scripts/compile.py          # build (in place, next to the sources) unless current
python scripts/compile.py --clean  # remove the builds: everything runs as Python
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.native import MODULES, ROOT, builds, compiled, stale  # noqa: E402

GROUP = "strangler_native"  # the shared library every compiled module links to


def clean() -> None:
    for source in MODULES:
        for build in builds(source):
            build.unlink()
    for shared in ROOT.glob(f"{GROUP}__mypyc*"):
        shared.unlink()
    shutil.rmtree(ROOT / "build" / "native", ignore_errors=True)


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)
    setup(
        name="strangler-native",
        packages=[],
        py_modules=[],
        ext_modules=mypycify(list(MODULES), opt_level="3", group_name=GROUP),
        script_args=["-q", "build_ext", "--inplace", "--build-temp", "build/native"],
    )
    # A module's own extension is a shim into the shared library, copied with the time it
    # was first built: mark each as built now, which is what gateway.native.stale reads.
    for source in MODULES:
        for path in builds(source):
            path.touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the native builds")
    args = parser.parse_args()
    if not args.clean and len(compiled()) == len(MODULES) and not stale():
        print(f"native: {len(MODULES)} modules compiled and current")
        return 0
    clean()
    if not args.clean:
        build()
        print(f"native: compiled {len(compiled())} of {len(MODULES)} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
