#!/usr/bin/env python3
"""A registry token server for tests (the Docker Hub token flow, on loopback).

  token_server.py DIR PORT [--user USER:PASSWORD]

Writes DIR/cert.pem (the registry's rootcertbundle) and serves
GET /token?service=…&scope=repository:NAME:ACTIONS with an RS256 JWT granting
the requested actions. With --user, requests must carry those Basic
credentials (else 401). Each request is logged to stdout.
"""
import base64, datetime, hashlib, json, os, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, padding

ISSUER = "anchorage-test-issuer"
SERVICE = "anchorage-test-registry"

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def libtrust_kid(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))

def main():
    out, port = sys.argv[1], int(sys.argv[2])
    creds = None
    if len(sys.argv) > 4 and sys.argv[3] == "--user":
        creds = "Basic " + base64.b64encode(sys.argv[4].encode()).decode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    with open(os.path.join(out, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    kid = libtrust_kid(key.public_key())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            print("token-request " + (fmt % args), flush=True)

        def do_GET(self):
            u = urlparse(self.path)
            if u.path != "/token":
                self.send_response(404); self.end_headers(); return
            if creds and self.headers.get("Authorization") != creds:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.end_headers()
                return
            q = parse_qs(u.query)
            access = []
            for scope in q.get("scope", []):
                parts = scope.split(":")
                if len(parts) >= 3 and parts[0] == "repository":
                    access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
            t = int(time.time())
            claims = {"iss": ISSUER, "sub": "test", "aud": q.get("service", [SERVICE])[0], "exp": t + 300,
                      "nbf": t - 10, "iat": t, "jti": str(uuid.uuid4()), "access": access}
            header = {"typ": "JWT", "alg": "RS256", "kid": kid}
            signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": signing + "." + b64url(sig), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("token server ready", flush=True)
    srv.serve_forever()

if __name__ == "__main__":
    main()
