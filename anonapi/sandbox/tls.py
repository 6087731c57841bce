"""A self-signed certificate authority and server certificate for ``--tls``.

The server certificate is signed by a small CA of its own rather than being
self-signed itself, because strict TLS clients (Python 3.13 sets
VERIFY_X509_STRICT) reject a CA certificate used as a server certificate.
Clients trust the sandbox by pointing REQUESTS_CA_BUNDLE at the CA file.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Iterable, NamedTuple

CA_FILE_NAME = "sandbox-ca.pem"
CERTIFICATE_FILE_NAME = "sandbox-cert.pem"
KEY_FILE_NAME = "sandbox-key.pem"

VALIDITY = datetime.timedelta(days=825)


class TlsFiles(NamedTuple):
    """Paths of the files that HTTPS needs."""

    certificate: Path
    key: Path
    ca_bundle: Path


def ensure_certificate(folder: Path, host_names: Iterable[str] = ("localhost", "127.0.0.1")) -> TlsFiles:
    """Return the certificate files in ``folder``, creating them if any is missing.

    The certificate is valid for ``host_names`` (DNS names and IP addresses)
    and for 825 days.
    """
    files = TlsFiles(folder / CERTIFICATE_FILE_NAME, folder / KEY_FILE_NAME, folder / CA_FILE_NAME)
    if all(path.is_file() for path in files):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    create_certificate(files, list(host_names))
    return files


def create_certificate(files: TlsFiles, host_names: list) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anonapi sandbox CA")])
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    alternative_names = []
    for name in host_names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    files.ca_bundle.write_bytes(ca_certificate.public_bytes(pem))
    files.certificate.write_bytes(server_certificate.public_bytes(pem))
    key_bytes = server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(str(files.key), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(key_bytes)
