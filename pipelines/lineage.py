"""Which code trained a model: the git commit of the working tree."""

import os
import re
import subprocess  # nosec B404  # runs git only, with a fixed argument list
from functools import lru_cache
from pathlib import Path

UNKNOWN = "unknown"


@lru_cache(maxsize=1)
def code_version() -> str:
    """The commit SHA: `CODE_VERSION` from the environment (set in container images,
    which carry no .git), else `git rev-parse HEAD` in this checkout, else "unknown"."""
    from_env = os.environ.get("CODE_VERSION", "").strip().lower()
    if re.fullmatch(r"[0-9a-f]{7,40}", from_env):
        return from_env
    try:
        # git from PATH with fixed arguments and no shell: nothing here comes from input.
        completed = subprocess.run(  # nosec B603, B607
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    sha = completed.stdout.strip()
    return sha if completed.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else UNKNOWN
