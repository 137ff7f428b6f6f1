"""Print the package's requirements, one a line, from pyproject.toml (used by the Dockerfiles).

    python deploy/requirements.py [pyproject.toml] [--extras cloud,...] [--cuda]

The images install these in a layer of their own before copying the code, so editing the code
does not reinstall TensorFlow. --cuda asks for `tensorflow[and-cuda]` (TensorFlow's CUDA and cuDNN
wheels) with the same version constraint. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib

REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?(?P<rest>.*)$")


def with_extra(requirement: str, package: str, extra: str) -> str:
    """`requirement` with `extra` added when it names `package` (names compared as PEP 503 does)."""
    match = REQUIREMENT.match(requirement)
    if not match or re.sub(r"[-_.]+", "-", match["name"]).lower() != package:
        return requirement
    extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
    if extra not in extras:
        extras.append(extra)
    return f"{match['name']}[{','.join(extras)}]{match['rest']}"


def requirements(pyproject: dict, extras: list[str], cuda: bool) -> list[str]:
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"requirements: unknown extra {', '.join(unknown)}; have {', '.join(sorted(optional))}")
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += optional[extra]
    if cuda:
        cuda_lines = [with_extra(line, "tensorflow", "and-cuda") for line in lines]
        if cuda_lines == lines:
            raise SystemExit("requirements: --cuda: the project does not depend on tensorflow")
        lines = cuda_lines
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", nargs="?", default="pyproject.toml")
    parser.add_argument("--extras", default="", help="comma-separated optional-dependency groups")
    parser.add_argument("--cuda", action="store_true", help="tensorflow[and-cuda] instead of tensorflow")
    args = parser.parse_args(argv)
    with open(args.pyproject, "rb") as file:
        pyproject = tomllib.load(file)
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    print("\n".join(requirements(pyproject, extras, args.cuda)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
