from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


setup(
    name="lakeray",
    version="0.1.0",
    description="End-to-end ML pipelines on Spark + Delta Lake + Ray",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    install_requires=_requirements("requirements.txt"),
    extras_require={"dev": _requirements("requirements-dev.txt")},
    entry_points={"console_scripts": ["lakeray=lakeray.cli:main", "lakeray-haproxy=lakeray.serve.ingress:main"]},
)
