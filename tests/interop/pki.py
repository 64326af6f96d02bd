#!/usr/bin/env python3
"""pki.py DIR PASSWORD - certificates for the security interop suite.

Writes, into DIR, a test CA and certificates it signs, as PEM (for kazoo and Paddock)
and PKCS12 (for Java; security.sh turns some into JKS with the JDK's keytool):
  ca.pem                       the CA certificate (trust store)
  server.{pem,key,p12}         127.0.0.1 / localhost, CN=server,OU=Interop,O=Paddock
  client.{pem,key,p12}         CN=client,OU=Interop,O=Paddock
  other.{pem,key,p12}          CN=other,OU=Interop,O=Paddock (same CA: trusted, not 'client')
  rogue.{pem,key,p12}          CN=client,OU=Interop,O=Paddock signed by another CA
  expired.{pem,key,p12}        CN=client,... whose validity ended in 2021
"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

out, password = sys.argv[1], sys.argv[2].encode()
now = datetime.datetime.now(datetime.timezone.utc)


def name(cn, ou="Interop"):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Paddock"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def leaf(issuer, cn, server=False, expired=False):
    ikey, icert = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    start = now - datetime.timedelta(days=1)
    end = now + datetime.timedelta(days=30)
    if expired:
        start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        end = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(name(cn)).issuer_name(icert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                               x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False))
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if not server:
        sans = [x509.DNSName(cn + ".interop.example")]
    b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ikey, hashes.SHA256())


def write(stem, pair, chain_ca):
    key, cert = pair
    with open(f"{out}/{stem}.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(f"{out}/{stem}.key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(f"{out}/{stem}.p12", "wb") as f:
        f.write(pkcs12.serialize_key_and_certificates(
            stem.encode(), key, cert, [chain_ca[1]], serialization.BestAvailableEncryption(password)))


the_ca = ca("Interop CA")
other_ca = ca("Rogue CA")
with open(f"{out}/ca.pem", "wb") as f:
    f.write(the_ca[1].public_bytes(serialization.Encoding.PEM))
write("server", leaf(the_ca, "server", server=True), the_ca)
write("client", leaf(the_ca, "client"), the_ca)
write("other", leaf(the_ca, "other"), the_ca)
write("rogue", leaf(other_ca, "client"), other_ca)
write("expired", leaf(the_ca, "client", expired=True), the_ca)
