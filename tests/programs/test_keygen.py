#!/usr/bin/env python3
"""gmud-keygen end to end, in a temporary directory: the files it writes,
their modes, what openssl(1) reads in the certificate, the pin it prints
(against one computed here independently), --force and its absence, and a
TLS handshake with Python's ssl module trusting the certificate.

usage: test_keygen.py GMUD-KEYGEN

Needs the openssl command (Debian's openssl package). A few seconds.
"""
import hashlib
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading

KEYGEN = os.path.abspath(sys.argv[1])
failures = []


def expect(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return ok


def keygen(args, cwd, umask=None):
    """Runs gmud-keygen; returns (status, stdout, stderr)."""
    pre = (lambda: os.umask(umask)) if umask is not None else None
    p = subprocess.run([KEYGEN] + args, cwd=cwd, capture_output=True, text=True, timeout=10,
                       preexec_fn=pre)
    return p.returncode, p.stdout, p.stderr


def openssl(args, data=None):
    p = subprocess.run(["openssl"] + args, input=data, capture_output=True, timeout=10)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def pin_by_openssl(cert):
    """sha256 of the DER SubjectPublicKeyInfo, the way an operator would
    compute it by hand, independently of gmud."""
    rc, pub, err = openssl(["x509", "-in", cert, "-noout", "-pubkey"])
    expect(rc == 0, f"openssl x509 -pubkey: {err}")
    rc, der, err = openssl(["pkey", "-pubin", "-outform", "DER"], pub)
    expect(rc == 0, f"openssl pkey -pubin: {err}")
    return "sha256:" + hashlib.sha256(der).hexdigest()


def cert_text(cert):
    rc, out, err = openssl(["x509", "-in", cert, "-noout", "-text"])
    expect(rc == 0, f"openssl x509 -text: {err}")
    return out.decode()


def check_pin_line(out, cert, what):
    lines = out.splitlines()
    expect(len(lines) == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}", lines[0] if lines else ""),
           f"{what}: stdout is not one pin line: {out!r}")
    pin = lines[0] if lines else ""
    expect(pin == pin_by_openssl(cert), f"{what}: printed pin {pin} is not the key's")
    return pin


def handshake(cert, key, server_hostname):
    """A Python TLS server with cert/key, a client trusting cert as its CA;
    returns what the client read back, or the client's exception."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.create_default_context(cafile=cert)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(5)
    server_error = []

    def serve():
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with sctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(64))
        except (OSError, ssl.SSLError) as e:
            server_error.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with cctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                tls.sendall(b"ping")
                got = tls.recv(64)
                version = tls.version()
    except (OSError, ssl.SSLError) as e:
        got, version = e, None
    finally:
        t.join(timeout=5)
        listener.close()
    return got, version, server_error


with tempfile.TemporaryDirectory(prefix="gmud-keygen-") as d:
    key, cert = os.path.join(d, "gmud-key.pem"), os.path.join(d, "gmud-cert.pem")

    # Defaults, under a umask that would strip the certificate's 0644.
    rc, out, err = keygen([], d, umask=0o077)
    expect(rc == 0, f"defaults: exit {rc}: {err}")
    expect(os.path.exists(key) and os.path.exists(cert),
           f"defaults: files missing: {os.listdir(d)}")
    expect(mode(key) == 0o600, f"key mode {oct(mode(key))}")
    expect(mode(cert) == 0o644, f"cert mode {oct(mode(cert))}")
    expect(read(key).startswith(b"-----BEGIN PRIVATE KEY-----\n"), "key is not PKCS#8 PEM")
    expect("gmud-key.pem" in err and "gmud-cert.pem" in err and "valid until" in err,
           f"defaults: stderr does not say what was written: {err!r}")
    pin1 = check_pin_line(out, cert, "defaults")

    text = cert_text(cert)
    for want in ("prime256v1", "P-256", "DNS:localhost", "IP Address:127.0.0.1",
                 "IP Address:0:0:0:0:0:0:0:1", "CA:FALSE", "Digital Signature",
                 "TLS Web Server Authentication", "Subject Key Identifier",
                 "ecdsa-with-SHA256", "Subject: CN = localhost", "Issuer: CN = localhost"):
        expect(want in text, f"certificate text lacks {want!r}")
    expect(re.search(r"Basic Constraints: critical", text), "basicConstraints not critical")
    rc, _, err = openssl(["verify", "-CAfile", cert, cert])
    expect(rc == 0, f"openssl verify (self-signed): {err}")
    # The key is the certificate's.
    rc, pub_key, err = openssl(["pkey", "-in", key, "-pubout"])
    rc2, pub_cert, err2 = openssl(["x509", "-in", cert, "-noout", "-pubkey"])
    expect(rc == 0 and rc2 == 0 and pub_key == pub_cert, f"key and cert differ: {err}{err2}")
    # Valid now (from an hour ago) and for 365 days, not 366.
    expect(openssl(["x509", "-in", cert, "-noout", "-checkend", str(364 * 86400)])[0] == 0,
           "certificate expires within 364 days")
    expect(openssl(["x509", "-in", cert, "-noout", "-checkend", str(366 * 86400)])[0] != 0,
           "certificate valid beyond 366 days")

    # TLS with the certificate as the client's CA, by name and by address.
    for host in ("localhost", "127.0.0.1"):
        got, version, serr = handshake(cert, key, host)
        expect(got == b"ping" and not serr, f"handshake to {host}: {got!r} server: {serr}")
        expect(version == "TLSv1.3", f"handshake to {host}: {version}")
    got, _, _ = handshake(cert, key, "example.org")
    expect(isinstance(got, ssl.SSLCertVerificationError), f"wrong name accepted: {got!r}")

    # Again without --force: exit 1, the file named, both files unchanged.
    before = (read(key), read(cert))
    rc, out, err = keygen([], d)
    expect(rc == 1 and "gmud-key.pem" in err and out == "", f"no --force: {rc} {out!r} {err!r}")
    expect((read(key), read(cert)) == before, "no --force: files changed")
    # Only the certificate there: still nothing written, the key not made.
    other = os.path.join(d, "other-key.pem")
    rc, out, err = keygen(["--key", other, "--cert", cert], d)
    expect(rc == 1 and "gmud-cert.pem" in err and not os.path.exists(other),
           f"existing cert only: {rc} {err!r} {os.listdir(d)}")
    expect(read(cert) == before[1], "existing cert only: cert changed")

    # --force: new key, new pin, same modes, no temporary file left.
    rc, out, err = keygen(["--force"], d)
    expect(rc == 0, f"--force: exit {rc}: {err}")
    pin2 = check_pin_line(out, cert, "--force")
    expect(pin2 != pin1 and read(key) != before[0], "--force: key not replaced")
    expect(mode(key) == 0o600 and mode(cert) == 0o644,
           f"--force modes {oct(mode(key))} {oct(mode(cert))}")
    expect(sorted(os.listdir(d)) == ["gmud-cert.pem", "gmud-key.pem"],
           f"--force left files: {os.listdir(d)}")

    # Names and addresses of one's own, in a subdirectory, for 1 day.
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    k2, c2 = os.path.join(sub, "k.pem"), os.path.join(sub, "c.pem")
    rc, out, err = keygen(["--key", k2, "--cert", c2, "--name", "game.example", "--name",
                           "*.eu.game.example", "--ip", "10.1.2.3", "--ip", "2001:db8::7",
                           "--days", "1"], d)
    expect(rc == 0, f"custom names: exit {rc}: {err}")
    check_pin_line(out, c2, "custom names")
    text = cert_text(c2)
    for want in ("DNS:game.example", "DNS:*.eu.game.example", "IP Address:10.1.2.3",
                 "IP Address:2001:DB8:0:0:0:0:0:7", "Subject: CN = game.example"):
        expect(want in text, f"custom names: certificate text lacks {want!r}")
    expect("localhost" not in text and "127.0.0.1" not in text,
           "custom names: the defaults were added too")
    expect(openssl(["x509", "-in", c2, "-noout", "-checkend", "0"])[0] == 0,
           "--days 1: not valid now")
    expect(openssl(["x509", "-in", c2, "-noout", "-checkend", str(2 * 86400)])[0] != 0,
           "--days 1: valid in two days")
    # Addresses only: the first is the CN.
    rc, out, err = keygen(["--key", "k3.pem", "--cert", "c3.pem", "--ip", "192.0.2.9"], sub)
    expect(rc == 0 and "Subject: CN = 192.0.2.9" in cert_text(os.path.join(sub, "c3.pem")),
           f"--ip only: {rc} {err}")

    # Bad usage: exit 2, a reason, nothing written.
    empty = os.path.join(d, "empty")
    os.mkdir(empty)
    for args, says in ((["--colour"], "unknown option"), (["--days", "0"], "--days"),
                       (["--days", "x"], "--days"), (["--days", "36501"], "--days"),
                       (["--key"], "needs a value"), (["--name", "a b"], "--name"),
                       (["--name", ""], "--name"), (["--ip", "300.1.1.1"], "--ip"),
                       (["stray"], "unexpected argument"),
                       (["--key", "same.pem", "--cert", "same.pem"], "same file")):
        rc, out, err = keygen(args, empty)
        expect(rc == 2 and says in err and out == "", f"{args}: {rc} {out!r} {err!r}")
    expect(os.listdir(empty) == [], f"bad usage wrote files: {os.listdir(empty)}")

    # A directory that cannot be written: exit 1 with a reason (skipped as
    # root, whom permissions do not stop).
    if os.geteuid() != 0:
        ro = os.path.join(d, "ro")
        os.mkdir(ro, 0o555)
        rc, out, err = keygen([], ro)
        expect(rc == 1 and "gmud-key.pem" in err, f"read-only dir: {rc} {err!r}")

    rc, out, _ = keygen(["--help"], empty)
    expect(rc == 0 and "--force" in out and "--days" in out, f"--help: {rc} {out!r}")
    rc, out, _ = keygen(["--version"], empty)
    expect(rc == 0 and re.match(r"gmud-keygen \d+\.\d+\.\d+", out), f"--version: {rc} {out!r}")

if failures:
    print(f"test_keygen: {len(failures)} failed")
    sys.exit(1)
print("test_keygen: ok")
