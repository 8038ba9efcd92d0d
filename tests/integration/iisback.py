"""
iisback.py - a back end that authenticates like IIS with Windows authentication,
for the integration tests. Raw sockets and threads, loopback only, plain or TLS.

State is per TCP connection, as IIS keeps it:
- a request without credentials on a connection nobody authenticated gets 401
  with two challenges, `WWW-Authenticate: Negotiate` and `WWW-Authenticate: NTLM`;
- `Authorization: NTLM <type 1>` gets 401 with a type 2 message whose 8-byte
  challenge is drawn for this connection;
- `Authorization: NTLM <type 3>` is accepted only when it answers the challenge
  this connection issued (the user name follows the challenge in our stand-in
  for the real message); otherwise it is counted in `rejected` and gets 401;
- `Authorization: Negotiate <token>` (Kerberos, one leg) authenticates at once;
- once authenticated, the connection stays so: later requests on it need no
  Authorization and are answered as that user.
A path with /public in it is answered anonymously on any connection; one with
/logoff is answered and the connection closed.

Every answer's body is JSON: the back end's name, the connection's number
(counted from 1 per back end), the user it was answered as (null: anonymous).
"""
import base64
import json
import os
import socket
import ssl
import threading

LOOP4 = "127.0.0.1"
NTLMSSP = b"NTLMSSP\x00"


def ntlm_type1():
    return "NTLM " + base64.b64encode(NTLMSSP + b"\x01\x00\x00\x00" + b"\x07\x82\x08\xa2").decode()


def ntlm_challenge(www_authenticate_values):
    """The 8-byte challenge of the type 2 message among a 401's WWW-Authenticate values, or None."""
    for v in www_authenticate_values:
        scheme, _, token = v.partition(" ")
        if scheme.lower() == "ntlm" and token:
            msg = base64.b64decode(token)
            if msg.startswith(NTLMSSP + b"\x02\x00\x00\x00"):
                return msg[12:20]
    return None


def ntlm_type3(challenge, user):
    return "NTLM " + base64.b64encode(NTLMSSP + b"\x03\x00\x00\x00" + challenge + user.encode()).decode()


def kerberos_token(user):
    return "Negotiate " + base64.b64encode(b"KRB5:" + user.encode()).decode()


class IISBackend:
    def __init__(self, name, certfile=None, keyfile=None):
        self.name = name
        self.ctx = None
        if certfile:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(certfile, keyfile)
            self.ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOP4, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.rejected = 0           # type 3 messages that reached a connection that had not issued their challenge
        self.answers = []           # (connection, user, target) of every answer
        self.clients = set()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            clients = list(self.clients)
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
                self.clients.add(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _send(self, c, status, conn, user, target, extra=(), close=False):
        body = json.dumps({"backend": self.name, "conn": conn, "user": user}).encode()
        head = ["HTTP/1.1 %d %s" % (status, "OK" if status == 200 else "Unauthorized"),
                "Content-Type: application/json", "Content-Length: %d" % len(body)]
        head += list(extra)
        if close:
            head.append("Connection: close")
        # Counted before it goes: a client that has its answer may look at the count at once,
        # and this thread may not run again for a while on a busy machine.
        with self.lock:
            self.answers.append((conn, user, target))
        c.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _serve(self, raw, conn):
        c = raw
        user = None                 # who authenticated this connection
        challenge = None            # the NTLM challenge this connection issued
        buf = b""
        try:
            if self.ctx:
                c = self.ctx.wrap_socket(raw, server_side=True)
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                if "/public" in target:
                    self._send(c, 200, conn, None, target)
                    continue
                scheme, _, token = headers.get("authorization", "").partition(" ")
                if scheme.lower() == "ntlm":
                    msg = base64.b64decode(token)
                    if msg.startswith(NTLMSSP + b"\x01"):
                        challenge = os.urandom(8)
                        t2 = NTLMSSP + b"\x02\x00\x00\x00" + challenge
                        self._send(c, 401, conn, None, target,
                                   ["WWW-Authenticate: NTLM " + base64.b64encode(t2).decode()])
                        continue
                    if msg.startswith(NTLMSSP + b"\x03") and challenge is not None and msg[12:20] == challenge:
                        user = msg[20:].decode()
                        challenge = None
                    else:
                        with self.lock:
                            self.rejected += 1
                        self._send(c, 401, conn, None, target,
                                   ["WWW-Authenticate: Negotiate", "WWW-Authenticate: NTLM"])
                        continue
                elif scheme.lower() == "negotiate":
                    msg = base64.b64decode(token)
                    if not msg.startswith(b"KRB5:"):
                        self._send(c, 401, conn, None, target, ["WWW-Authenticate: Negotiate"])
                        continue
                    user = msg[5:].decode()
                if user is None:
                    self._send(c, 401, conn, None, target, ["WWW-Authenticate: Negotiate", "WWW-Authenticate: NTLM"])
                    continue
                self._send(c, 200, conn, user, target, close="/logoff" in target)
                if "/logoff" in target:
                    return
        except (OSError, ValueError, ssl.SSLError):
            return
        finally:
            with self.lock:
                self.clients.discard(raw)
            try:
                c.close()
            except OSError:
                pass
