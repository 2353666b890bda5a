"""Where rewheel looks for upstream packages: one answer for the resolver (gaps), fetch and recipe new.

The index comes from rewheel's own settings, never from a requirements file, a pip.conf or a uv.toml:
- REWHEEL_INDEX_URL (the `--index-url` option of `gaps`, `build -r` and `recipe new` sets it) and
  REWHEEL_EXTRA_INDEX_URL (space-separated);
- else PIP_INDEX_URL / PIP_EXTRA_INDEX_URL from the environment, kept because existing setups and CI set
  them explicitly for the process (a variable the caller exported is a choice; a config file lying around is
  not);
- else pip's default index (asked from pip's own code, so rewheel names no index host).

Every pip or uv subprocess rewheel runs gets `tool_environment()`: config files switched off
(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG=1) and the index variables pip and uv read replaced by these
settings, so a tool can never see another index than rewheel's own code does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Variables through which pip or uv would pick an index, extra sources or a config file up from the
# environment; tool_environment() removes them all before adding rewheel's own choice back.
_TOOL_INDEX_VARIABLES = (
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST",
    "PIP_CONFIG_FILE", "PIP_CONSTRAINT", "PIP_REQUIREMENT",
    "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_FIND_LINKS", "UV_NO_INDEX",
    "UV_CONFIG_FILE", "UV_INDEX_STRATEGY", "UV_CONSTRAINT", "UV_OVERRIDE", "UV_BUILD_CONSTRAINT",
    "UV_INSECURE_HOST", "UV_DEPENDENCY_METADATA",
)  # fmt: skip


@dataclass(frozen=True)
class IndexSettings:
    index_url: str
    extra_index_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> list[str]:
        return [self.index_url, *(u for u in self.extra_index_urls if u != self.index_url)]


def default_index_url() -> str:
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def index_settings(environ: Mapping[str, str] | None = None) -> IndexSettings:
    env = os.environ if environ is None else environ
    primary = env.get("REWHEEL_INDEX_URL") or env.get("PIP_INDEX_URL") or default_index_url()
    if "REWHEEL_EXTRA_INDEX_URL" in env or "REWHEEL_INDEX_URL" in env:
        extra = env.get("REWHEEL_EXTRA_INDEX_URL", "").split()
    else:
        extra = env.get("PIP_EXTRA_INDEX_URL", "").split()
    return IndexSettings(primary, tuple(extra))


def uv_index_options(settings: IndexSettings | None = None) -> list[str]:
    settings = settings or index_settings()
    options = ["--index-url", settings.index_url]
    for url in settings.extra_index_urls:
        options += ["--extra-index-url", url]
    if settings.extra_index_urls:
        # pip considers every index's files together and takes the best version; uv's default stops at the
        # first index that has the project.
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def tool_environment(settings: IndexSettings | None = None) -> dict[str, str]:
    """os.environ for a pip or uv subprocess: no config files, and only rewheel's index."""
    settings = settings or index_settings()
    env = {k: v for k, v in os.environ.items() if k not in _TOOL_INDEX_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["PIP_INDEX_URL"] = settings.index_url
    if settings.extra_index_urls:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(settings.extra_index_urls)
    return env
