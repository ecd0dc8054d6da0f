#!/usr/bin/env python3
"""A registry upstream that misbehaves on request, for fault tests.

  fault_upstream.py PORT [BLOB_BYTES]

Serves one image: GET /v2/ → 200; /v2/fault/app/manifests/v1 (and by digest)
and the blobs it names. GET /control?mode=M sets how blob and manifest GETs
misbehave until the next change:
  ok            behave
  close_mid     send half the body, then close the connection
  short         Content-Length N, send N-1000 bytes, close
  more          Content-Length N-1000, then all N bytes (a lying length)
  stall         send half, then stop sending (longer than the stall timeout)
  wrong_bytes   right length, one byte changed
  status:CODE   answer CODE (500, 502, 503, 429); status:CODE:retry adds
                Retry-After: 7, status:CODE:date a Retry-After HTTP date 120 s ahead
  promise:N     Content-Length N, send 2 MiB of the blob, close
  hang:S        a GET of anything it does not serve (an unknown blob, tags/list)
                waits S seconds, then 404
  chunked       the body with Transfer-Encoding: chunked (no length)
  eof           the body with no length, ended by closing the connection
  redirect_loop 302 to itself
  smuggle       a manifest GET is answered right, then 100 ms later a second,
                forged 200 response follows on the same connection unasked
                (prints "smuggled" once written)
GET /v2/fault/app/referrers/<manifest digest> lists two referrers (artifact
types application/vnd.example.sbom and .sig); other digests 404.
  bad_manifest  manifests by digest answer different bytes
Every request is logged on stdout.
"""
import hashlib, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

rand = os.urandom
BLOB = rand(int(sys.argv[2]) if len(sys.argv) > 2 else 3_000_000)
BLOB_D = "sha256:" + hashlib.sha256(BLOB).hexdigest()
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [BLOB_D]}}).encode()
CONFIG_D = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG_D, "size": len(CONFIG)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": BLOB_D, "size": len(BLOB)}]}).encode()
MANIFEST_D = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
MODE = {"mode": "ok"}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("request " + (fmt % args), flush=True)

    def send_body(self, status, body, ctype="application/octet-stream", extra=None):
        mode = MODE["mode"]
        if mode.startswith("status:"):
            parts = mode.split(":")
            self.send_response(int(parts[1]))
            if len(parts) > 2 and parts[2] == "date":
                from email.utils import formatdate
                self.send_header("Retry-After", formatdate(time.time() + 120, usegmt=True))
            elif len(parts) > 2:
                self.send_header("Retry-After", "7")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "redirect_loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "wrong_bytes":
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
            body = bytes(body)
        if mode in ("chunked", "eof") and self.command == "GET":
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            if mode == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 100_000):
                    part = body[i:i + 100_000]
                    self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
            else:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body); self.wfile.flush()
                self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        length = len(body) - 1000 if mode == "more" else len(body)
        if mode.startswith("promise:"):
            length = int(mode.split(":")[1])
        self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if mode.startswith("promise:"):
            self.wfile.write(body[: 2 << 20]); self.wfile.flush()
            self.close_connection = True
            return
        if mode == "close_mid":
            self.wfile.write(body[: len(body) // 2]); self.wfile.flush()
            self.close_connection = True
            return
        if mode == "short":
            self.wfile.write(body[:-1000]); self.wfile.flush()
            self.close_connection = True
            return
        if mode == "more":
            self.wfile.write(body); self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall":
            self.wfile.write(body[: len(body) // 2]); self.wfile.flush()
            time.sleep(30)
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        p = self.path
        if p.startswith("/control?mode="):
            MODE["mode"] = p.split("=", 1)[1]
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            return
        if p == "/v2/":
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
            return
        if p in ("/v2/fault/app/manifests/v1", "/v2/fault/app/manifests/" + MANIFEST_D):
            body = MANIFEST
            if MODE["mode"] == "bad_manifest" and p.endswith(MANIFEST_D):
                body = MANIFEST.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
                MODE_SAVE = MODE["mode"]; MODE["mode"] = "ok"
                self.send_body(200, body, "application/vnd.oci.image.manifest.v1+json", {"Docker-Content-Digest": MANIFEST_D})
                MODE["mode"] = MODE_SAVE
                return
            self.send_body(200, body, "application/vnd.oci.image.manifest.v1+json", {"Docker-Content-Digest": MANIFEST_D})
            if MODE["mode"] == "smuggle" and self.command == "GET":
                self.wfile.flush()
                time.sleep(0.1)
                forged = MANIFEST.replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "annotations": {"forged": "yes"}')
                head = ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                        "Docker-Content-Digest: sha256:%s\r\nContent-Length: %d\r\n\r\n" % (hashlib.sha256(forged).hexdigest(), len(forged)))
                self.wfile.write(head.encode() + forged); self.wfile.flush()
                print("smuggled", flush=True)
            return
        if p.split("?")[0] == "/v2/fault/app/referrers/" + MANIFEST_D:
            entry = lambda t, n: {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1, "artifactType": t,
                                  "digest": "sha256:" + hashlib.sha256(n.encode()).hexdigest()}
            body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                               "manifests": [entry("application/vnd.example.sbom", "a"), entry("application/vnd.example.sig", "b")]}).encode()
            self.send_body(200, body, "application/vnd.oci.image.index.v1+json")
            return
        blobs = {BLOB_D: BLOB, CONFIG_D: CONFIG}
        for d, b in blobs.items():
            if p == "/v2/fault/app/blobs/" + d:
                self.send_body(200, b)
                return
        if MODE["mode"].startswith("hang:") and p.startswith("/v2/fault/"):
            print("hanging " + p, flush=True)
            time.sleep(float(MODE["mode"].split(":")[1]))
        self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()

class Server(ThreadingHTTPServer):
    request_queue_size = 1024

srv = Server(("127.0.0.1", int(sys.argv[1])), H)
srv.daemon_threads = True
print(json.dumps({"ready": True, "blob": BLOB_D, "manifest": MANIFEST_D, "blob_sha": BLOB_D}), flush=True)
srv.serve_forever()
