"""HTTPS of the sandbox: the certificate it makes, and one given to it."""

from __future__ import annotations

import ipaddress
import stat

import pytest
import requests
from cryptography import x509

from anonapi.sandbox import Sandbox
from anonapi.sandbox.tls import ensure_certificate


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory):
    with Sandbox(data_dir=tmp_path_factory.mktemp("tls-data"), tls=True) as sandbox:
        yield sandbox


def test_url_is_https(tls_sandbox):
    assert tls_sandbox.url.startswith("https://127.0.0.1:")


def test_https_with_ca_bundle(tls_sandbox):
    response = requests.get(tls_sandbox.url, verify=str(tls_sandbox.ca_bundle), timeout=30)
    assert response.status_code == 404
    assert "documentation" in response.json()


def test_https_by_localhost_name(tls_sandbox):
    url = tls_sandbox.url.replace("127.0.0.1", "localhost")
    response = requests.get(url, verify=str(tls_sandbox.ca_bundle), timeout=30)
    assert response.status_code == 404


def test_https_api_call(tls_sandbox):
    response = requests.get(
        f"{tls_sandbox.url}/get_jobs",
        data={"user_name": tls_sandbox.user_name},
        headers={"Authorization": f"Token {tls_sandbox.token}"},
        verify=str(tls_sandbox.ca_bundle),
        timeout=30,
    )
    assert response.status_code == 200


def test_https_untrusted_without_ca_bundle(tls_sandbox):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_sandbox.url, timeout=30)


def test_requests_ca_bundle_variable(tls_sandbox, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_sandbox.ca_bundle))
    assert requests.get(tls_sandbox.url, timeout=30).status_code == 404


def test_certificate_names(tls_sandbox):
    certificate_path = tls_sandbox.data_dir / "sandbox-cert.pem"
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_private_key_only_owner_reads(tls_sandbox):
    mode = stat.S_IMODE((tls_sandbox.data_dir / "sandbox-key.pem").stat().st_mode)
    assert mode == 0o600


def test_certificate_reused_after_restart(tmp_path):
    with Sandbox(data_dir=tmp_path, tls=True):
        first = (tmp_path / "sandbox-cert.pem").read_bytes()
    with Sandbox(data_dir=tmp_path, tls=True):
        second = (tmp_path / "sandbox-cert.pem").read_bytes()
    assert first == second


def test_given_certificate(tmp_path):
    files = ensure_certificate(tmp_path / "own")
    with Sandbox(data_dir=tmp_path / "data", certificate=files.certificate, key=files.key) as sandbox:
        response = requests.get(sandbox.url, verify=str(files.ca_bundle), timeout=30)
    assert response.status_code == 404


def test_given_certificate_makes_no_new_one(tmp_path):
    files = ensure_certificate(tmp_path / "own")
    with Sandbox(data_dir=tmp_path / "data", certificate=files.certificate, key=files.key):
        pass
    assert not (tmp_path / "data" / "sandbox-cert.pem").exists()
