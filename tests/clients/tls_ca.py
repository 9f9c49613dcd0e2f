"""A throwaway certificate authority for the TLS tests, made fresh by every
run (nothing secret is committed): a CA, a server certificate for
127.0.0.1/localhost, client certificates (one valid, one expired, one from
a CA the server does not trust), written as PEM files into a directory."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_cn: str
    expired_cert: Path
    expired_key: Path
    untrusted_cert: Path
    untrusted_key: Path

    def server_pair(self, name: str) -> tuple[Path, Path]:
        """Another server certificate from the same CA (for reload tests)."""
        return _issue_server(self.directory, name, *_load_ca(self.directory))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "StreamHouse tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(directory: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_cert(directory / f"{name}.crt", cert)
    _write_key(directory / f"{name}.key", key)
    return cert, key


def _load_ca(directory: Path):
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    return cert, key


def _issue(
    ca_cert,
    ca_key,
    common_name: str,
    usage,
    sans=None,
    not_before=None,
    not_after=None,
):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(hours=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _issue_server(directory: Path, name: str, ca_cert, ca_key) -> tuple[Path, Path]:
    cert, key = _issue(
        ca_cert,
        ca_key,
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    _write_cert(directory / f"{name}.crt", cert)
    _write_key(directory / f"{name}.key", key)
    return directory / f"{name}.crt", directory / f"{name}.key"


def _issue_client(directory: Path, name: str, cn: str, ca_cert, ca_key, **validity):
    cert, key = _issue(ca_cert, ca_key, cn, ExtendedKeyUsageOID.CLIENT_AUTH, **validity)
    _write_cert(directory / f"{name}.crt", cert)
    _write_key(directory / f"{name}.key", key)
    return directory / f"{name}.crt", directory / f"{name}.key"


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(directory, "ca")
    server_cert, server_key = _issue_server(directory, "server", ca_cert, ca_key)
    client_cn = "alice-client"
    client_cert, client_key = _issue_client(directory, "client", client_cn, ca_cert, ca_key)
    long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    expired_cert, expired_key = _issue_client(
        directory,
        "expired",
        "expired-client",
        ca_cert,
        ca_key,
        not_before=long_ago,
        not_after=long_ago + datetime.timedelta(days=1),
    )
    other_cert, other_key = _make_ca(directory, "other-ca")
    untrusted_cert, untrusted_key = _issue_client(
        directory, "untrusted", "mallory", other_cert, other_key
    )
    return Pki(
        directory=directory,
        ca_cert=directory / "ca.crt",
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        client_cn=client_cn,
        expired_cert=expired_cert,
        expired_key=expired_key,
        untrusted_cert=untrusted_cert,
        untrusted_key=untrusted_key,
    )
