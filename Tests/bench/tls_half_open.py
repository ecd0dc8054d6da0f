#!/usr/bin/env python3
"""Opens N TLS connections to 127.0.0.1:PORT that send their ClientHello and
never finish the handshake, prints "opened N refused R", then holds them
until stdin closes (or the process is killed).

  tls_half_open.py PORT N"""
import resource, socket, ssl, sys

port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held, refused = [], 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    t = ctx.wrap_socket(s, do_handshake_on_connect=False)
    try:
        t.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except (ssl.SSLError, OSError):
        refused += 1
    held.append(t)
print(f"opened {n} refused {refused}", flush=True)
sys.stdin.read()
