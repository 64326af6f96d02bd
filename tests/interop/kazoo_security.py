#!/usr/bin/env python3
"""kazoo_security.py PORT PKI_DIR tls|sasl - kazoo against a TLS port, or with SASL.

Prints a transcript that must be the same against Apache ZooKeeper 3.8 and Paddock.
tls: x509 ACLs set and enforced between two client certificates of one CA, and the
clients that must be refused (a certificate of another CA, an expired one, none at all).
sasl: DIGEST-MD5 (pure-sasl) as bob and carol, sasl ACLs between them, a wrong password.
Exits non-zero when something that must work does not.
"""
import logging
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

logging.basicConfig(level=logging.CRITICAL)
port, pki, mode = sys.argv[1], sys.argv[2], sys.argv[3]
CLIENT = "CN=client,OU=Interop,O=Paddock"
OTHER = "CN=other,OU=Interop,O=Paddock"


def client(stem):
    kw = dict(hosts=f"127.0.0.1:{port}", use_ssl=True, ca=f"{pki}/ca.pem", verify_certs=True,
              timeout=5)
    if stem:
        kw.update(certfile=f"{pki}/{stem}.pem", keyfile=f"{pki}/{stem}.key")
    return KazooClient(**kw)


def acl_text(acls):
    return sorted((a.perms, a.id.scheme, a.id.id) for a in acls)


def sasl(user, pw):
    return KazooClient(hosts=f"127.0.0.1:{port}", timeout=5,
                       sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": pw})


if mode == "sasl":
    b = sasl("bob", "bob-pw")
    b.start(timeout=15)
    print("bob connected")
    b.create("/ksasl", b"bobs", acl=[make_acl("sasl", "bob", all=True)])
    print("acl", acl_text(b.get_acls("/ksasl")[0]))
    print("bob get", b.get("/ksasl")[0])
    c = sasl("carol", "carol-pw")
    c.start(timeout=15)
    try:
        c.get("/ksasl")
        print("carol get: allowed")
    except NoAuthError:
        print("carol get: NoAuthError")
    b.delete("/ksasl")
    c.stop()
    b.stop()
    w = sasl("bob", "not-the-password")
    try:
        w.start(timeout=5)
        print("wrong password: connected")
        w.get("/")
        print("wrong password: served")
    except Exception as e:
        print(f"wrong password: refused ({type(e).__name__})")
    finally:
        w.stop()
        w.close()
    sys.exit(0)

assert mode == "tls"
c = client("client")
c.start(timeout=15)
print("client connected")
c.create("/ktls", b"v1", acl=[make_acl("x509", CLIENT, all=True)])
print("get", c.get("/ktls")[0])
print("acl", acl_text(c.get_acls("/ktls")[0]))
o = client("other")
o.start(timeout=15)
print("other connected")
try:
    o.get("/ktls")
    print("other get: allowed")
except NoAuthError:
    print("other get: NoAuthError")
c.set_acls("/ktls", [make_acl("x509", CLIENT, all=True), make_acl("x509", OTHER, read=True)])
print("other get after setAcl", o.get("/ktls")[0])
try:
    o.set("/ktls", b"v2")
    print("other set: allowed")
except NoAuthError:
    print("other set: NoAuthError")
c.delete("/ktls")
o.stop()
c.stop()
for stem in ["rogue", "expired", None]:
    k = client(stem)
    try:
        k.start(timeout=5)
        print(f"{stem or 'no certificate'}: connected")
        k.stop()
    except Exception as e:  # kazoo keeps retrying; its start gives up with a timeout
        print(f"{stem or 'no certificate'}: refused ({type(e).__name__})")
    finally:
        k.close()
