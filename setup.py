"""Build hook (the project is described in pyproject.toml): the wheel carries the shipped
scenarios (``scenarios/*.yaml``) and guest image recipes (``guests/*.yaml``) as package data under
``vbench/_shipped/``, so that an installed vbench finds ``vbench run disk`` and builds its guest
image outside a checkout (:mod:`vbench.shipped` looks there after ./ and the checkout)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("scenarios", "guests")


class BuildWithShipped(build_py):
    def run(self):
        super().run()
        for kind in SHIPPED:
            dest = Path(self.build_lib) / "vbench" / "_shipped" / kind
            dest.mkdir(parents=True, exist_ok=True)
            for path in sorted((ROOT / kind).glob("*.yaml")):
                shutil.copyfile(path, dest / path.name)


setup(cmdclass={"build_py": BuildWithShipped})
