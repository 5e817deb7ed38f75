"""setuptools glue that pyproject.toml cannot express: files placed outside the package in the wheel."""

import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithZooFiles(build_py):
    """
    Also put in the wheel: ``sb3_mlsh_zoo.pth`` at the top of site-packages (it makes
    ``python -m rl_zoo3.train --algo mlsh`` work), its PEP 829 form ``sb3_mlsh_zoo.start`` next to it
    (read instead by Pythons that implement PEP 829), and ``hyperparams/*.yml`` inside the package.
    """

    def run(self) -> None:
        super().run()
        for name in ("sb3_mlsh_zoo.pth", "sb3_mlsh_zoo.start"):
            self.copy_file(name, os.path.join(self.build_lib, name))
        target = os.path.join(self.build_lib, "sb3_mlsh", "hyperparams")
        self.mkpath(target)
        for path in glob.glob(os.path.join("hyperparams", "*.yml")):
            self.copy_file(path, os.path.join(target, os.path.basename(path)))


setup(cmdclass={"build_py": BuildPyWithZooFiles})
