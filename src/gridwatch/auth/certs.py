"""Certificates for NATS TLS (clients and cluster routes): a private CA and server certificates.

``gridwatch nats-certs --out DIR --host nats-1 --host nats-2 ...`` writes ``ca.pem`` /
``ca-key.pem`` and one ``<host>.pem`` / ``<host>-key.pem`` per host, whose subject alternative
names are the host name (plus ``--san`` extras, e.g. ``localhost``, ``127.0.0.1``). The same
certificate serves the client port and the routes (it is valid for server and client auth, as
routes verify each other). Keys are written mode 0600. Clients trust ``ca.pem``
(``nats.tls_ca_file``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class IssuedCert:
    host: str
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _load_or_make_ca(out: Path, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_pem, ca_key_pem = out / "ca.pem", out / "ca-key.pem"
    if ca_pem.exists() and ca_key_pem.exists():  # new hosts join the existing CA
        cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        key = serialization.load_pem_private_key(ca_key_pem.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridwatch NATS CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(ca_key_pem, key)
    ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_certs(
    out: str | Path,
    hosts: list[str],
    *,
    extra_sans: list[str] | None = None,
    days: int = 825,
) -> list[IssuedCert]:
    """Create (or reuse) the CA in ``out`` and a server certificate per host."""
    if not hosts:
        raise ValueError("name at least one host")
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _load_or_make_ca(d, days)
    now = dt.datetime.now(dt.UTC)
    issued = []
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        sans = list(dict.fromkeys([host, *(extra_sans or [])]))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = d / f"{host}.pem", d / f"{host}-key.pem"
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.append(IssuedCert(host, cert_path, key_path))
    return issued
