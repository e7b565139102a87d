"""The server's security model (docs/serve.md): host names, origins, headers, body limits, strict
steering input, and an explicit SAE whose hook is not the store's."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from tests.serve.conftest import local_client
from vsae.errors import VsaeError
from vsae.serve import Served, ServeLimits, create_app, from_flags
from vsae.serve.security import allowed_hosts, host_name


class FakeDiffusion:
    n_latents = 16

    def __call__(self, prompt, latent, op, value, seed):
        return Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), (latent, 0, 0))


@pytest.fixture(scope="module")
def client(served):
    return local_client(
        create_app(
            served, ServeLimits(max_upload_bytes=200_000, max_json_bytes=4096), diffusion=FakeDiffusion()
        ),
        raise_server_exceptions=False,
    )


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.5"])
def test_other_host_names_are_refused(client, host):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends Host: evil.example."""
    r = client.get("/api/info", headers={"Host": host})
    assert r.status_code == 403 and "not served here" in r.json()["error"]
    assert client.get("/", headers={"Host": host}).status_code == 403


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8000", "localhost:41937", "[::1]:8000", "LOCALHOST"]
)
def test_loopback_names_are_served(client, host):
    assert client.get("/api/info", headers={"Host": host}).status_code == 200


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert "10.1.2.3" in allowed_hosts("10.1.2.3") and "0.0.0.0" not in allowed_hosts("0.0.0.0")
    assert "box.lan" in allowed_hosts("0.0.0.0", ["box.lan:8000"])
    assert [host_name(h) for h in ("[::1]:80", "A.b:1", "x")] == ["::1", "a.b", "x"]


POSTS = [
    ("/api/steer", {"image": 0, "latent": 3, "value": 1}),
    ("/api/steer/diffusion", {"prompt": "a", "latent": 1, "value": 1}),
    ("/api/upload", None),
]


@pytest.mark.parametrize(("url", "body"), POSTS)
@pytest.mark.parametrize(
    "ctype", ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_cross_origin_posts_are_refused(client, url, body, ctype):
    """Another origin's page can send these without a preflight (text/plain, form bodies): refused."""
    data = json.dumps(body).encode() if body else b"\x89PNG..."
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        r = client.post(url, content=data, headers={"Content-Type": ctype, **headers})
        assert r.status_code == 403 and "refused" in r.json()["error"], (headers, r.text)


def test_same_origin_posts_pass(client):
    ok = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
    r = client.post("/api/steer/diffusion", json={"prompt": "a", "latent": 1, "value": 1}, headers=ok)
    assert r.status_code == 200
    r = client.post("/api/steer/diffusion", json={"prompt": "a", "latent": 1, "value": 1})  # curl: no Origin
    assert r.status_code == 200
    # a JSON route refuses the bodies a cross-origin form could send even without an Origin header
    r = client.post(
        "/api/steer/diffusion",
        content=b'{"prompt": "a", "latent": 1, "value": 1}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400 and "application/json" in r.json()["error"]


@pytest.mark.parametrize("url", ["/", "/api/info", "/static/app.js", "/api/image/0.png", "/nothing"])
def test_security_headers(client, url):
    h = client.get(url).headers
    csp = h["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert client.get(url, headers={"Host": "evil.example"}).headers["x-content-type-options"] == "nosniff"


def test_json_body_limit(client):
    big = {"prompt": "a", "latent": 1, "value": 1, "pad": "x" * 10_000}
    r = client.post("/api/steer/diffusion", json=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    # without a Content-Length (chunked), the limit holds while reading
    r = client.post(
        "/api/steer",
        content=iter([b'{"pad": "', b"x" * 5000, b'"}']),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"latent": "10", "value": 1}, "latent must be an integer"),
        ({"latent": 10.7, "value": 1}, "latent must be an integer"),
        ({"latent": True, "value": 1}, "latent must be an integer"),
        ({"latent": "", "value": 1}, "latent must be an integer"),
        ({"value": 1}, "give latent"),
        ({"latent": 1}, "give value"),
        ({"latent": 1, "value": ""}, "finite number"),
        ({"latent": 1, "value": True}, "finite number"),
        ({"latent": 1, "value": 1e308}, "finite number"),
        ({"latent": 1, "value": 10**400}, "finite number"),
        ({"latent": 1, "value": 1, "seed": 10**30}, "seed"),
        ({"latent": 1, "value": 1, "seed": "abc"}, "seed must be an integer"),
        ({"latent": 1, "value": 1, "seed": -1}, "seed"),
        ({"latent": 1, "value": 1, "seed": 1.5}, "seed must be an integer"),
        ({"latent": 1, "value": 1, "op": 3}, "unknown op"),
        ({"latent": 1, "value": 1, "prompt": 7}, "prompt must be a string"),
        ({"latent": 1, "value": 1, "prompt": "a\nb"}, "one line"),
    ],
)
def test_diffusion_input_is_strict(client, body, words, caplog):
    body = {"prompt": "a red circle", **body}
    with caplog.at_level(logging.INFO, logger="vsae.serve"):
        r = client.post("/api/steer/diffusion", json=body)
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert not caplog.records  # a bad request logs no traceback


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"image": "0", "latent": 3, "value": 1}, "image must be an integer"),
        ({"image": 0, "latent": 3.0, "value": 1}, "latent must be an integer"),
        ({"image": 0, "latent": 3, "value": 1e308}, "finite number"),
        ({"image": 0, "latent": 3, "value": -1e7}, "finite number"),
        ({"image": 0, "latent": 3, "value": 1, "question": ["q"]}, "question must be a string"),
    ],
)
def test_steer_input_is_strict(client, body, words, caplog):
    with caplog.at_level(logging.INFO, logger="vsae.serve"):
        r = client.post("/api/steer", json=body)
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert not caplog.records


def test_ablate_needs_no_value(client):
    r = client.post("/api/steer/diffusion", json={"prompt": "a", "latent": 2, "op": "ablate"})
    assert r.status_code == 200 and r.json()["value"] == 0


def test_explicit_mode_refuses_a_hook_mismatch(built, other_hook_store):
    with pytest.raises(VsaeError, match="trained on resid.1 but the store .* holds resid.2"):
        from_flags(other_hook_store, built["run"], built["world"])
    ok = from_flags(built["store"], built["run"], built["world"])
    assert ok.id == "resid.1/" + built["run"].name and ok.warning is None  # the id names its hook
    forced = from_flags(other_hook_store, built["run"], built["world"], force=True)
    assert "hook mismatch" in forced.warning
    c = local_client(create_app(Served((forced,)), diffusion=None))
    assert "hook mismatch" in c.get("/api/info").json()["warning"]
    assert local_client(create_app(Served((ok,)), diffusion=None)).get("/api/info").json()["warning"] is None
