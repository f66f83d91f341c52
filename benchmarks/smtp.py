"""E-mails per second over SMTP: onetoone's SmtpChannel (one connection kept open) vs the naive
way (smtplib, one connection per message), same server, same messages, same run.

Starts a local aiosmtpd server that accepts and discards every message, in its own process on
loopback, then sends N messages (default 2,000; built by ``onetoone.channels.mail.build_email``
in both cases: multipart text and HTML, unsubscribe headers) with
1. ``SmtpChannel.send`` in batches of the delivery loop's size (``Deliverer``'s ``BATCH``);
2. what a user would write: ``with smtplib.SMTP(host, port) as s: s.send_message(mail)`` per
   message, ``mail`` from ``build_email``;
3. the same, but ``s.sendmail`` of the bytes SmtpChannel sends (``email_bytes``): the cost of
   a connection per message alone.
Twice: in clear (``security = "none"``), then with STARTTLS and a login (a certificate of a
throwaway CA made by the ``openssl`` command, trusted through ``SSL_CERT_FILE``; skipped
without ``openssl``). Prints messages/s (median of ``--repeat`` runs) and the ratios; nothing is
asserted. Usage: ``python benchmarks/smtp.py [--messages 2000] [--repeat 3]``; figures go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from onetoone.channels import ChannelConfig, Message
from onetoone.channels.delivery import BATCH
from onetoone.channels.mail import build_email, email_bytes
from onetoone.channels.smtp import SmtpChannel

SENDER = "Maison Dupont <bonjour@maison-dupont.fr>"
USER, PASSWORD_ENV = "bench", "ONETOONE_BENCH_SMTP_PASSWORD"


def serve(port: int, tls: Path | None) -> None:
    """The server process: accept and discard every message until killed (with ``tls``, a
    folder holding server.pem and server.key: STARTTLS offered and a login required)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logging.getLogger("mail.log").setLevel(logging.ERROR)

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: queued"

    kwargs = {}
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server.pem", tls / "server.key")
        kwargs = {"tls_context": context, "auth_required": True, "auth_require_tls": True,
                  "authenticator": lambda *args: AuthResult(success=True)}
    controller = Controller(Discard(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def messages(n: int) -> list[Message]:
    return [Message(
        delivery_id=f"bench-{i:06d}", decision_id=f"dec-{i}", customer_id=f"c-{i}",
        campaign="bench", channel="email", action_id="new_collection",
        to=f"client{i}@example.com",
        fields={"subject": "La nouvelle collection d'été",
                "text": f"Bonjour {i},\n\nDécouvrez la nouvelle collection.\n\nÀ bientôt."},
        links={"unsubscribe": f"https://shop.example/t/u/{i}",
               "open": f"https://shop.example/t/o/{i}.gif"}) for i in range(n)]


def certificates(folder: Path) -> None:
    """A throwaway CA (ca.pem) and a certificate it signed for 127.0.0.1 (server.pem/.key)."""
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                       "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
         "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "server.ext"],
    ):
        subprocess.run(["openssl", *command], cwd=folder, check=True, capture_output=True)


def with_channel(port: int, batch: list[Message], tls: bool = False) -> int:
    values = {"type": "smtp", "host": "127.0.0.1", "port": port, "security": "none",
              "from": SENDER}
    if tls:
        values |= {"security": "starttls", "username": USER, "password_env": PASSWORD_ENV}
    channel = SmtpChannel("email", ChannelConfig.model_validate(values))
    try:
        for start in range(0, len(batch), BATCH):
            outcomes = channel.send(batch[start:start + BATCH])
            assert all(o.status == "sent" for o in outcomes), outcomes[:3]
    finally:
        channel.close()
    return channel.connections


def naive(port: int, batch: list[Message], tls: bool = False, *, same_bytes: bool = False) -> int:
    for message in batch:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            if tls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.login(USER, os.environ[PASSWORD_ENV])
            if same_bytes:
                smtp.sendmail("bonjour@maison-dupont.fr", [message.to],
                              email_bytes(message, SENDER))
            else:
                smtp.send_message(build_email(message, SENDER))
    return len(batch)


def naive_same_bytes(port: int, batch: list[Message], tls: bool = False) -> int:
    return naive(port, batch, tls, same_bytes=True)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(run: Callable[[int, list[Message], bool], int], port: int, batch: list[Message],
            repeat: int, tls: bool, server: int) -> tuple[float, int, float, float]:
    """Median messages/s, connections, and CPU milliseconds a message of this process and of
    the server (CPU time does not grow with the machine's load the way wall time does)."""
    rates, connections, client, served = [], 0, [], []
    for _ in range(repeat):
        started, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(server)
        connections = run(port, batch, tls)
        rates.append(len(batch) / (time.perf_counter() - started))
        client.append((time.process_time() - cpu) * 1000 / len(batch))
        served.append((cpu_seconds(server) - server_cpu) * 1000 / len(batch))
    return (statistics.median(rates), connections, statistics.median(client),
            statistics.median(served))


def start_server(tls: Path | None) -> tuple[subprocess.Popen[str], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    command = [sys.executable, __file__, "--serve", str(port)]
    if tls is not None:
        command += ["--tls-folder", str(tls)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--tls-folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tls_folder)
        return
    batch = messages(args.messages)
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        modes: list[tuple[str, Path | None]] = [("in clear", None)]
        if shutil.which("openssl"):
            certificates(Path(work))
            os.environ["SSL_CERT_FILE"] = str(Path(work) / "ca.pem")
            os.environ[PASSWORD_ENV] = "bench-password"
            modes.append(("STARTTLS + login", Path(work)))
        else:
            print("openssl absent: no STARTTLS rows")
        for mode, folder in modes:
            server, port = start_server(folder)
            tls = folder is not None
            try:
                with_channel(port, batch[:50], tls)  # warm up: imports, first connection
                for name, run in (
                        ("SmtpChannel (one connection kept open)", with_channel),
                        ("smtplib `send_message(build_email(m))`, a connection each (peer)",
                         naive),
                        ("smtplib `sendmail` of the same bytes, a connection each",
                         naive_same_bytes)):
                    rows.append((mode, name, *measure(run, port, batch, args.repeat, tls,
                                                      server.pid)))
                    print(f"{mode}, {name}: {rows[-1][2]:,.0f} messages/s", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=10)
    print(f"\n{args.messages:,} messages to a local aiosmtpd server (own process), median of "
          f"{args.repeat} runs; python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load {load:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| connection | sender | messages/s | connections | CPU ms a message, sender | "
          "server |\n|---|---|---|---|---|---|")
    for mode, name, rate, connections, client, served in rows:
        print(f"| {mode} | {name} | {rate:,.0f} | {connections:,} | {client:.2f} | "
              f"{served:.2f} |")
    print()
    for index in range(0, len(rows), 3):
        print(f"{rows[index][0]}: SmtpChannel {rows[index][2] / rows[index + 1][2]:.1f}x the "
              f"peer, {rows[index][2] / rows[index + 2][2]:.1f}x a connection a message")
    best = rows[0][2]
    print(f"goal >= 200 messages/s with connection reuse (in clear): "
          f"{'met' if best >= 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
