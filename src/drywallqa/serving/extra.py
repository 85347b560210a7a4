"""What ``drywallqa serve`` needs beyond the base install (the ``serve`` extra), and the one pip
command that adds it. The requirements are read from the installed package's metadata, so this
stays in step with ``pyproject.toml``."""

from __future__ import annotations

import importlib
import shlex

from drywallqa.errors import DrywallQAError

# Import name of each distribution of the serve extra (where it differs from the distribution's).
SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python-multipart": "python_multipart",
                 "fastapi-offline": "fastapi_offline"}


def serve_requirements() -> list[str]:
    """The requirement strings of the ``serve`` extra, e.g. ``["fastapi>=0.110", ...]``."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("drywallqa") or []
    except PackageNotFoundError:  # running from a source tree that was never installed
        declared = []
    found = []
    for requirement in declared:
        name, _, marker = requirement.partition(";")
        if marker.replace("'", '"').strip() == 'extra == "serve"':
            found.append(name.strip())
    return found or list(SERVE_MODULES)


def serve_install_command() -> str:
    """``pip install ...`` with the serve extra's requirements, quoted for a shell."""
    return "pip install " + " ".join(shlex.quote(req) for req in serve_requirements())


def require_serve_extra() -> None:
    """Import what the HTTP service needs, or fail with the pip command that adds it.

    Raises:
        DrywallQAError: Naming the missing modules and the one ``pip install`` command.
    """
    require_modules(SERVE_MODULES, "the HTTP service", serve_install_command())


def require_modules(modules: dict[str, str], needed_by: str, install_command: str) -> None:
    """Import ``modules`` (distribution -> module), or fail naming the missing distributions.

    Args:
        modules: What an optional part needs beyond the base install: distribution -> module.
        needed_by: The part, for the message (``"the HTTP service"``).
        install_command: The one ``pip install`` command that adds them.

    Raises:
        DrywallQAError: Naming the missing distributions and ``install_command``.
    """
    missing = []
    for distribution, module in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise DrywallQAError(f"{needed_by} needs {', '.join(missing)}, which the base install leaves out; "
                             f"add them with: {install_command}")
