"""Build hook: leave the development script manifests/build.py out of the wheel (pyproject.toml
maps manifests/ into the package for its data; nothing there can drop a module)."""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def find_package_modules(self, package: str, package_dir: str) -> list:
        return [m for m in super().find_package_modules(package, package_dir)
                if m[:2] != ("fer_prep.manifests", "build")]


setup(cmdclass={"build_py": BuildPy})
