"""
nsback.py - the servers of the topology tests, run inside a network namespace:
python3 nsback.py SPEC.json LOGFILE. SPEC is a list of listeners {name, addr,
port, cert?, key?}; each answers every HTTP request (over TLS when cert is
given) with one JSON object: its name, the peer address it saw, the PROXY
header's source if one came first (v1 or v2, detected), the TLS server name,
the request line's path and the X-Forwarded-For header, then closes. Every
accepted connection is appended to LOGFILE as "name peer", so a test can see
that nothing reached a server. Prints "ready" once every listener is bound.
"""
import json
import socket
import ssl
import sys
import threading

from harness import PP2_SIG, read_proxy_header


def listen(spec):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((spec["addr"], spec["port"]))
    ls.listen(64)
    return ls


def serve(spec, ls, log, lock):
    ctx = None
    if spec.get("cert"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(spec["cert"], spec["key"])
    sni = {}

    def on_sni(sock, name, _ctx):
        sni[id(sock)] = name
    if ctx:
        ctx.sni_callback = on_sni
    def handle(c, peer):
        try:
            c.settimeout(10)
            proxy = None
            first = c.recv(16, socket.MSG_PEEK)
            if first.startswith(b"PROXY ") or (first and PP2_SIG.startswith(first[:12])):
                proxy = read_proxy_header(c).get("src")
            s = c
            name = None
            if ctx:
                s = ctx.wrap_socket(c, server_side=True)
                name = sni.pop(id(s), None) or getattr(s, "server_hostname", None)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1] if len(head[0].split(" ")) > 1 else ""
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            body = json.dumps({"name": spec["name"], "peer": peer, "proxy_src": proxy, "sni": name,
                               "path": path, "xff": hdrs.get("x-forwarded-for"),
                               "host": hdrs.get("host")}).encode() + b"\n"
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            c.close()

    while True:
        c, a = ls.accept()
        with lock:
            log.write("%s %s\n" % (spec["name"], a[0]))
            log.flush()
        threading.Thread(target=handle, args=(c, a[0]), daemon=True).start()


def main():
    with open(sys.argv[1]) as f:
        specs = json.load(f)
    log = open(sys.argv[2], "a")
    lock = threading.Lock()
    # Every socket listens before "ready": a connect after it is queued, never refused.
    socks = [listen(s) for s in specs]
    threads = [threading.Thread(target=serve, args=(s, ls, log, lock), daemon=True) for s, ls in zip(specs, socks)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
