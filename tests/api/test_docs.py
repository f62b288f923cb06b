"""The API docs page works offline: every script and stylesheet it loads is served by medbill itself."""

from __future__ import annotations

import re


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'<script[^>]*\bsrc="([^"]+)"', html) + re.findall(r'<link[^>]*\bhref="([^"]+)"', html)


def test_docs_page_loads_only_local_assets_and_they_are_served(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    urls = _asset_urls(html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), urls
    assert any(u.endswith("swagger-ui.css") for u in urls), urls
    for url in urls:
        assert url.startswith("/api/docs/assets/"), url  # no CDN: nothing on the page needs the internet
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.data) > 1000, url
        assert "max-age" in asset.headers["Cache-Control"], url
    js = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert js.mimetype in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in js.data


def test_docs_assets_serve_only_the_listed_files(client):
    assert client.get("/api/docs/assets/index.j2").status_code == 404
    assert client.get("/api/docs/assets/swagger-ui-bundle.js.map").status_code == 404
    assert client.get("/api/docs/assets/..%2Fswagger-ui.css").status_code == 404
