"""Preview URLs and the origin a studio allows in ``frame-src``."""

from __future__ import annotations

import uuid

import pytest

from builder.errors import ConfigurationError
from builder.preview.tokens import PreviewSigner, preview_key
from builder.preview.urls import preview_host_suffix, preview_origin, public_preview_url
from builder.settings import Settings


def test_development_previews_are_localhost_subdomains_of_the_preview_port() -> None:
    settings = Settings(preview_port=8001, secret_key="k")
    url = public_preview_url(settings, uuid.UUID(int=3), generation=9)
    assert url is not None and url.startswith("http://") and url.endswith(".localhost:8001/")
    token = url.split("//")[1].split(".")[0]
    grant = PreviewSigner(preview_key(settings), ttl=60).verify(token)
    assert grant is not None and (grant.project_id, grant.generation) == (uuid.UUID(int=3), 9)
    assert preview_origin(settings) == "http://*.localhost:8001"


def test_production_previews_use_the_wildcard_base_url() -> None:
    settings = Settings(preview_base_url="https://{token}.preview.example.com", secret_key="k")
    url = public_preview_url(settings, uuid.UUID(int=3), generation=1)
    assert url is not None and url.endswith(".preview.example.com/")
    assert preview_origin(settings) == "https://*.preview.example.com"
    assert preview_host_suffix("https://{token}.preview.example.com/") == ".preview.example.com"


def test_previews_are_off_without_either_setting() -> None:
    assert public_preview_url(Settings(), uuid.UUID(int=3), generation=1) is None
    assert preview_origin(Settings()) is None


@pytest.mark.parametrize(
    "base",
    ["https://preview.example.com", "https://x{token}.example.com", "https://{token}.e.com/p"],
)
def test_a_base_url_without_a_token_label_is_a_clear_error(base: str) -> None:
    with pytest.raises(ConfigurationError, match="first host label"):
        preview_origin(Settings(preview_base_url=base))
