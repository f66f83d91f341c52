"""SMS over an HTTP gateway: segments and encodings, STOP keywords, the adapter against a tiny
real HTTP server (retries, refusals, POST forms), and the whole loop through a real Kannel
(bearerbox, smsbox and the fake SMS centre ``fakesmsc``) started by the tests: sending,
delivery reports reaching ``deliveries``, and an inbound STOP withdrawing consent."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import httpx
import pytest

from _service_server import CONFIG, OPTIN, Server, crm_sources, free_port, make_workspace
from onetoone import Workspace
from onetoone.channels.base import Message
from onetoone.channels.delivery import Deliverer, Limits
from onetoone.channels.secrets import KEY_ENV, KEY_FILE, channel_secret
from onetoone.channels.settings import ChannelConfig
from onetoone.channels.sms import (
    GSM_BASIC,
    GSM_BASIC_TABLE,
    GSM_EXTENSION,
    HttpGateway,
    callback_token,
    clean_text,
    dlr_status,
    is_stop,
    segments,
)
from onetoone.errors import ConfigError

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
_missing = [str(p) for p in (BEARERBOX, SMSBOX, FAKESMSC) if not p.exists()]
needs_kannel = pytest.mark.skipif(
    bool(_missing),
    reason=f"Kannel is not installed ({', '.join(_missing)} missing: apt-get install kannel "
           "kannel-extras)")

PHONE = "+33612345678"
KANNEL_PASSWORD = "kannel-test-pw"
WAIT = 30.0  # seconds at most for an asynchronous effect (never asserted as a duration)


def message(delivery_id: str, text: str, to: str = PHONE) -> Message:
    return Message(delivery_id=delivery_id, decision_id=f"dec-{delivery_id}",
                   customer_id="C1", campaign="spring", channel="sms",
                   action_id="retention_offer", to=to, fields={"text": text})


def gateway_config(**values: Any) -> ChannelConfig:
    return ChannelConfig.model_validate({"type": "http_gateway", "from": "MaisonDupont",
                                         "backoff_seconds": 1.0, **values})


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something true (bounded: no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- a. segments, encodings, keywords -------------------------------------------------------


def test_gsm_tables_are_the_standard_ones() -> None:
    assert len(GSM_BASIC_TABLE) == 128 and len(GSM_BASIC) == 127  # 0x1B is the escape
    assert GSM_BASIC_TABLE[0x00] == "@" and GSM_BASIC_TABLE[0x02] == "$"
    assert GSM_BASIC_TABLE[0x24] == "¤" and GSM_BASIC_TABLE[0x40] == "¡"
    assert GSM_BASIC_TABLE[0x09] == "Ç" and GSM_BASIC_TABLE[0x1F] == "É"
    assert GSM_BASIC_TABLE[0x7F] == "à" and GSM_BASIC_TABLE[0x60] == "¿"
    assert set("\f^{}\\[]~|€") == GSM_EXTENSION
    assert not GSM_BASIC & GSM_EXTENSION


def test_segments_gsm7() -> None:
    assert segments("a" * 160) == ("GSM-7", 160, 1)
    assert segments("a" * 161) == ("GSM-7", 161, 2)
    assert segments("a" * 306) == ("GSM-7", 306, 2)
    assert segments("a" * (153 * 2 + 1)) == ("GSM-7", 307, 3)
    assert segments("€") == ("GSM-7", 2, 1)
    assert segments("{[~]}") == ("GSM-7", 10, 1)
    assert segments("€" * 80) == ("GSM-7", 160, 1)
    assert segments("a" + "€" * 80)[2] == 2
    # an escape pair is not split across two parts: 152 septets then € (2) -> a third part
    assert segments("a" * 152 + "€" + "a" * 152) == ("GSM-7", 306, 3)


def test_french_accents_of_the_gsm_alphabet_stay_gsm7() -> None:
    text = "Été: é è ù ì ò à É Ç Ø ø Å å Ä ä Ö ö Ñ ñ Ü ü ß, -20 % pour vous à 10 € !"
    encoding, chars, count = segments(text)
    assert (encoding, count) == ("GSM-7", 1)
    assert chars == len(text) + 1  # the euro sign counts two
    # ç (small c cedilla), ê, ë, î, ï, ô, û are not in the GSM alphabet (only Ç is)
    for letter in "çêëîïôûÀÈ":
        assert segments(f"Bonjour {letter}")[0] == "UCS-2", letter


def test_emoji_switch_to_ucs2_and_count_two_units() -> None:
    assert segments("Merci 🙂") == ("UCS-2", 8, 1)
    assert segments("é" * 69 + "ç") == ("UCS-2", 70, 1)
    assert segments("ç" * 71) == ("UCS-2", 71, 2)
    assert segments("ç" * (67 * 2 + 1)) == ("UCS-2", 135, 3)
    assert segments("🙂" * 35) == ("UCS-2", 70, 1)
    assert segments("🙂" * 36) == ("UCS-2", 72, 2)
    # a surrogate pair is not split: 66 units then an emoji (2) -> the emoji opens part two
    assert segments("ç" * 66 + "🙂" + "ç" * 66) == ("UCS-2", 134, 3)


def test_clean_text_keeps_newlines_only() -> None:
    assert clean_text("a\r\nb\rc\td\x00e\x1bf\u0085g\nh") == "a\nb\ncdefg\nh"


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop. ", "ARRET", "arrêt !", "Arrêt",
                                  "STOP SMS", "stopsms", "Stop  Sms!!", "UNSUBSCRIBE",
                                  "unsubscribe.", "DESINSCRIRE", "désinscrire", "DÉSINSCRIRE ?"])
def test_stop_keywords(text: str) -> None:
    assert is_stop(text)


@pytest.mark.parametrize("text", ["", "STOPP", "stop please", "please stop", "Merci",
                                  "arrête", "STOP!? non, je plaisante", "OK stop", "1STOP"])
def test_not_stop(text: str) -> None:
    assert not is_stop(text)


def test_kannel_report_types() -> None:
    assert [dlr_status(c) for c in (1, 2, 4, 8, 16)] == [
        "delivered", "bounced", "sent", "sent", "failed"]
    assert dlr_status(0x22) == "bounced"  # Kannel's "expired"
    for code in (0, -1, 32):
        with pytest.raises(ValueError):
            dlr_status(code)


def test_callback_tokens_and_the_channel_secret(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    secret = channel_secret(tmp_path)
    assert channel_secret(tmp_path) == secret and len(secret) == 64
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    token = callback_token(secret, "d-1")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token != callback_token(secret, "d-2") != callback_token(b"other", "d-1")
    monkeypatch.setenv(KEY_ENV, "from-the-environment")
    assert channel_secret(tmp_path) == b"from-the-environment"


# -- e. the adapter against a tiny real HTTP server -------------------------------------------


@dataclass
class Gateway:
    """A provider's HTTP API: records each request, answers the queued statuses (then 200)."""

    url: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def provider() -> Iterator[Gateway]:
    gateway = Gateway("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with gateway.lock:
                gateway.requests.append((self.command, self.path, body))
                status, text = gateway.answers.pop(0) if gateway.answers else (200, "OK")
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if text.startswith("{")
                             else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gateway
    server.shutdown()
    server.server_close()


def _deliver(gateway: HttpGateway, messages: list[Message]
             ) -> tuple[Any, list[dict[str, Any]], list[float]]:
    rows: list[dict[str, Any]] = []
    slept: list[float] = []
    tally = Deliverer(gateway, Limits(rate_per_second=1e6, max_attempts=3, backoff_seconds=1.0),
                      rows.extend, sleep=slept.append).deliver(messages)
    return tally, rows, slept


def test_a_5xx_is_retried_then_sent(provider: Gateway) -> None:
    provider.answers = [(500, "busy"), (503, "busy"), (200, "0: Accepted for delivery")]
    gateway = HttpGateway("sms", gateway_config(
        url=f"{provider.url}/send?to={{to}}&text={{text}}&from={{from}}&id={{delivery_id}}"))
    try:
        tally, rows, slept = _deliver(gateway, [message("d-1", "Bonjour & à bientôt +1")])
    finally:
        gateway.close()
    assert (tally.sent, tally.retried, tally.failed) == (1, 2, 0)
    assert slept.count(1.0) == 1 and slept.count(2.0) == 1  # backoff, not wall clock
    final = rows[-1]
    assert (final["status"], final["attempts"], final["provider_id"]) == ("sent", 3, "d-1")
    assert [r[0] for r in provider.requests] == ["GET"] * 3
    query = parse_qs(urlsplit(provider.requests[0][1]).query)
    assert query == {"to": [PHONE], "text": ["Bonjour & à bientôt +1"],
                     "from": ["MaisonDupont"], "id": ["d-1"]}


def test_a_4xx_is_a_permanent_refusal_without_the_number(provider: Gateway) -> None:
    provider.answers = [(400, f"Invalid destination {PHONE} (33612345678): text "
                              "'Votre code FIDELE20' refused, code 21211")]
    gateway = HttpGateway("sms", gateway_config(url=f"{provider.url}/send?to={{to}}&text="
                                                    "{text}"))
    try:
        tally, rows, _ = _deliver(gateway, [message("d-2", "Votre code FIDELE20")])
    finally:
        gateway.close()
    assert (tally.sent, tally.failed, tally.retried) == (0, 1, 0)
    assert len(provider.requests) == 1
    error = rows[-1]["error"]
    assert rows[-1]["status"] == "failed" and error.startswith("refused: 400 Invalid destination")
    assert "33612345678" not in error and "612345678" not in error
    assert "FIDELE20" not in error and "code 21211" in error
    assert tally.errors == {"refused": 1}


def test_rate_limit_answers_are_retried_and_unreachable_gateways_too(provider: Gateway) -> None:
    provider.answers = [(429, "slow down")]
    gateway = HttpGateway("sms", gateway_config(url=f"{provider.url}/s?to={{to}}&t={{text}}"))
    try:
        assert gateway.send([message("d-3", "x")])[0].status == "retry"
        assert gateway.send([message("d-3", "x")])[0].status == "sent"
    finally:
        gateway.close()
    closed = HttpGateway("sms", gateway_config(
        url=f"http://127.0.0.1:{free_port()}/s?to={{to}}&t={{text}}", timeout_seconds=5))
    try:
        outcome = closed.send([message("d-4", "x")])[0]
    finally:
        closed.close()
    assert outcome.status == "retry" and outcome.error == "gateway unreachable: ConnectError"


def test_post_form_fields_and_the_providers_id(provider: Gateway,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_PROVIDER_TOKEN", "tok-123")
    provider.answers = [(201, '{"id": "msg-42", "status": "queued"}')]
    gateway = HttpGateway("sms", gateway_config(
        url=f"{provider.url}/v1/messages?To={{to}}&Body={{text}}&From={{from}}"
            "&Key={password}&Callback={dlr_url}",
        method="POST", password_env="SMS_PROVIDER_TOKEN",
        dlr_url="/v1/channels/sms/dlr?delivery_id={delivery_id}&token={dlr_token}"),
        secret=b"k" * 32, server_url="https://crm.example.fr/")
    try:
        outcome = gateway.send([message("d-5", "Ligne 1\nLigne 2 🙂\x07")])[0]
    finally:
        gateway.close()
    assert (outcome.status, outcome.provider_id) == ("sent", "msg-42")
    method, path, body = provider.requests[0]
    assert (method, path) == ("POST", "/v1/messages")
    form = parse_qs(body.decode())
    token = callback_token(b"k" * 32, "d-5")
    assert form == {"To": [PHONE], "Body": ["Ligne 1\nLigne 2 🙂"], "From": ["MaisonDupont"],
                    "Key": ["tok-123"],
                    "Callback": [f"https://crm.example.fr/v1/channels/sms/dlr?delivery_id=d-5"
                                 f"&token={token}"]}


def test_texts_that_cannot_be_sent_are_refused_before_the_gateway(provider: Gateway) -> None:
    gateway = HttpGateway("sms", gateway_config(url=f"{provider.url}/s?to={{to}}&t={{text}}"),
                          max_segments=2)
    try:
        too_long, empty, no_phone = gateway.send([
            message("d-6", "ç" * 135), message("d-7", " \x00 "),
            message("d-8", "Bonjour", to="0612345678")])
    finally:
        gateway.close()
    assert too_long.status == "failed"
    assert too_long.error == "too long: 3 segments (UCS-2, 135 characters), at most 2"
    assert (empty.status, no_phone.status) == ("failed", "failed")
    assert "0612345678" not in (no_phone.error or "")
    assert provider.requests == []


def test_configuration_mistakes_are_told_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="public URL"):
        HttpGateway("sms", gateway_config(url="http://gw/?to={to}&t={text}",
                                          dlr_url="/v1/channels/sms/dlr?d={delivery_id}"))
    with pytest.raises(ConfigError, match="callback token"):
        HttpGateway("sms", gateway_config(url="http://gw/?to={to}&t={text}",
                                          dlr_url="https://x/dlr?token={dlr_token}"))
    with pytest.raises(ConfigError, match="MISSING_PASSWORD"):
        HttpGateway("sms", gateway_config(url="http://gw/?to={to}&t={text}",
                                          password_env="MISSING_PASSWORD"))


# -- b, c, d. through a real Kannel -----------------------------------------------------------

CUSTOMERS = f"""id;prenom;mail;tel;langue;pays
1;Marie;marie@exemple.fr;{PHONE};fr;FR
2;John;john@example.co.uk;+447700900123;en;GB
"""
CONSENTS = """client;canal;ok;date
1;sms;oui;2026-01-10
2;sms;oui;2026-01-10
"""
SOURCES = crm_sources({"source_id": "id", "first_name": "prenom", "email": "mail",
                       "phone": "tel", "language": "langue", "country": "pays"}, OPTIN)
KANNEL_CONF = """
group = core
admin-port = {admin}
admin-password = {admin_password}
smsbox-port = {smsbox}
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "{folder}/bearerbox.log"
log-level = 0

# outgoing messages go to the fake SMS centre "mt" (fakesmsc connects to its port)
group = smsc
smsc = fake
smsc-id = mt
port = {mt}
connect-allow-ip = "127.0.0.1"

# inbound messages are injected through "mo"; nothing is routed to it
group = smsc
smsc = fake
smsc-id = mo
allowed-smsc-id = mo
port = {mo}
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
log-file = "{folder}/smsbox.log"
log-level = 0

group = sendsms-user
username = onetoone
password = {password}
user-allow-ip = "127.0.0.1"
forced-smsc = mt

# every inbound message: to onetoone; its (empty) answer sends nothing back
group = sms-service
keyword = default
catch-all = true
get-url = "{server}/v1/channels/sms/inbound?from=%p&text=%a&id=%I&token={token}"
omit-empty = true
max-messages = 0
"""


@dataclass
class Kannel:
    """A running Kannel and the onetoone server it calls back."""

    folder: Path
    server: Server
    secret: bytes
    ports: dict[str, int]
    customers: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sendsms(self) -> str:
        return (f"http://127.0.0.1:{self.ports['sendsms']}/cgi-bin/sendsms?username=onetoone"
                "&password={password}&to={to}&from={from}&text={text}&coding={coding}"
                "&charset=UTF-8")

    def received(self) -> list[tuple[str, str, str]]:
        """(sender, receiver, text) of each message the fake SMS centre "mt" got."""
        out = []
        log = (self.folder / "fakesmsc-mt.log").read_text(encoding="utf-8", errors="replace")
        for sender, receiver, kind, data in re.findall(
                r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>", log):
            if kind == "text":
                out.append((sender, receiver, data))
            else:  # form-encoded bytes: UTF-16BE for "ucs-2", else 8-bit data
                raw = unquote_to_bytes(data.replace("+", "%20"))
                out.append((sender, receiver, raw.decode(
                    "utf-16-be" if kind == "ucs-2" else "utf-8", "replace")))
        return out

    def log_tail(self) -> str:
        return "\n".join((self.folder / name).read_text(errors="replace")[-3000:]
                         for name in ("bearerbox.log", "smsbox.log") if
                         (self.folder / name).exists())


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _insert_delivery(con: Any, delivery_id: str, customer_id: str) -> None:
    con.execute(
        """INSERT INTO deliveries (delivery_id, decision_id, customer_id, campaign, channel,
                                   action_id, status, attempts, created_at, updated_at)
           VALUES (?, ?, ?, 'spring', 'sms', 'retention_offer', 'queued', 0,
                   now()::TIMESTAMP, now()::TIMESTAMP)""",
        [delivery_id, f"dec-{delivery_id}", customer_id])


@pytest.fixture(scope="module")
def kannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kannel]:
    if _missing:
        pytest.skip(f"Kannel is not installed ({', '.join(_missing)} missing)")
    root = tmp_path_factory.mktemp("sms")
    (root / "crm.csv").write_text(CUSTOMERS, encoding="utf-8")
    (root / "consents.csv").write_text(CONSENTS, encoding="utf-8")
    keys = make_workspace(root, CONFIG + SOURCES)
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
        customers = dict(ws.store.con.execute(
            "SELECT first_name, customer_id FROM customers").fetchall())
        for delivery_id in ("d-dlr-1", "d-dlr-2", "d-dlr-3"):
            _insert_delivery(ws.store.con, delivery_id, customers["Marie"])
    saved = os.environ.pop(KEY_ENV, None)
    secret = channel_secret(root)  # the server reads the same .onetoone/channels.key
    server = Server(root, keys)
    folder = root / "kannel"
    folder.mkdir()
    ports = {name: free_port() for name in ("admin", "smsbox", "mt", "mo", "sendsms")}
    conf = folder / "kannel.conf"
    conf.write_text(KANNEL_CONF.format(
        folder=folder, server=server.url, token=callback_token(secret, "inbound"),
        password=KANNEL_PASSWORD, admin_password="adm-test", **ports), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    running = Kannel(folder, server, secret, ports, customers)
    try:
        server.start()
        for name, binary in (("bearerbox", BEARERBOX), ("smsbox", SMSBOX)):
            with (folder / f"{name}.out").open("wb") as out:
                running.procs.append(subprocess.Popen(
                    [str(binary), str(conf)], stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=folder, env=env))
            port = ports["smsbox"] if name == "bearerbox" else ports["sendsms"]
            wait_for(lambda p=port: _listening(p), f"{name} on port {port}")  # type: ignore[misc]
        # the receiving fake SMS centre: interactive mode (no message given), sending nothing,
        # printing each message it gets
        with (folder / "fakesmsc-mt.log").open("wb") as out:
            running.procs.append(subprocess.Popen(
                [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(ports["mt"]), "-m", "0"],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=folder))
        status = (f"http://127.0.0.1:{ports['admin']}/status.txt?password=adm-test")
        wait_for(lambda: re.search(r"^\s*mt\[mt\].*online", httpx.get(status, timeout=5).text,
                                   re.M), "the fake SMS centre to connect")
        yield running
    finally:
        for proc in reversed(running.procs):
            _stop(proc)
        server.stop()
        if saved is not None:
            os.environ[KEY_ENV] = saved


def _sql(server: Server, query: str) -> list[list[Any]]:
    with server.client("admin") as client:
        response = client.post("/v1/sql", json={"query": query})
    assert response.status_code == 200, response.text
    rows: list[list[Any]] = response.json()["rows"]
    return rows


@needs_kannel
def test_sent_through_kannel_to_the_fake_sms_centre(kannel: Kannel,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANNEL_SENDSMS_PASSWORD", KANNEL_PASSWORD)
    gateway = HttpGateway("sms", gateway_config(
        url=kannel.sendsms, password_env="KANNEL_SENDSMS_PASSWORD"))
    texts = {"d-send-1": "Bonjour Marie, -20 % cette semaine à la boutique & en ligne : "
                         "code FIDELE20 (10 € offerts) !",
             "d-send-2": "Merci pour votre visite 🙂 à bientôt"}
    try:
        outcomes = gateway.send([message(d, t) for d, t in texts.items()])
    finally:
        gateway.close()
    assert [(o.status, o.provider_id) for o in outcomes] == [
        ("sent", "d-send-1"), ("sent", "d-send-2")]
    got = wait_for(lambda: len(kannel.received()) >= 2 and kannel.received(),
                   "two messages at the fake SMS centre")
    assert sorted(got) == sorted(("MaisonDupont", PHONE, t) for t in texts.values()), \
        kannel.log_tail()


@needs_kannel
def test_kannel_refuses_a_wrong_password_for_good(kannel: Kannel) -> None:
    gateway = HttpGateway("sms", gateway_config(url=kannel.sendsms.replace(
        "{password}", "wrong")))
    try:
        outcome = gateway.send([message("d-send-3", "Bonjour")])[0]
    finally:
        gateway.close()
    assert outcome.status == "failed" and (outcome.error or "").startswith("refused: 403")


@needs_kannel
def test_delivery_reports_reach_the_deliveries(kannel: Kannel) -> None:
    gateway = HttpGateway("sms", gateway_config(
        url=kannel.sendsms.replace("{password}", KANNEL_PASSWORD)
        + "&dlr-mask=31&dlr-url={dlr_url}",
        dlr_url="/v1/channels/sms/dlr?delivery_id={delivery_id}&status=%d&token={dlr_token}"),
        secret=kannel.secret, server_url=kannel.server.url)
    try:
        outcome = gateway.send([message("d-dlr-1", "Votre commande est prête")])[0]
    finally:
        gateway.close()
    assert outcome.status == "sent"

    def status() -> Any:
        rows = _sql(kannel.server, "SELECT status, sent_at IS NOT NULL FROM deliveries "
                                   "WHERE delivery_id = 'd-dlr-1'")
        return rows[0] if rows and rows[0][0] == "delivered" else None

    # Kannel reports 8 (accepted by the SMS centre) and 1 (delivered), in either order
    assert wait_for(status, "the delivery report") == ["delivered", True], kannel.log_tail()
    untouched = _sql(kannel.server, "SELECT status FROM deliveries WHERE delivery_id = "
                                    "'d-dlr-2'")
    assert untouched == [["queued"]]


@needs_kannel
def test_forged_or_missing_tokens_are_not_found(kannel: Kannel) -> None:
    good = callback_token(kannel.secret, "d-dlr-2")
    with httpx.Client(base_url=kannel.server.url, timeout=30) as client:
        forged = client.get("/v1/channels/sms/dlr", params={
            "delivery_id": "d-dlr-2", "status": "1", "token": good[:-1] + "0"})
        missing = client.get("/v1/channels/sms/dlr", params={"delivery_id": "d-dlr-2",
                                                             "status": "1"})
        other = client.get("/v1/channels/sms/dlr", params={
            "delivery_id": "d-dlr-1", "status": "2", "token": good})
        unknown = client.get("/v1/channels/sms/dlr", params={
            "delivery_id": "nope", "status": "1", "token": callback_token(kannel.secret,
                                                                           "nope")})
        bad_type = client.get("/v1/channels/sms/dlr", params={
            "delivery_id": "d-dlr-2", "status": "x", "token": good})
        inbound = client.get("/v1/channels/sms/inbound", params={
            "from": PHONE, "text": "STOP", "token": good})
    assert [r.status_code for r in (forged, missing, other, unknown, bad_type, inbound)] == [
        404, 404, 404, 404, 422, 404]
    assert _sql(kannel.server, "SELECT status FROM deliveries WHERE delivery_id = "
                               "'d-dlr-2'") == [["queued"]]


@needs_kannel
def test_a_late_intermediate_report_does_not_undo_a_final_one(kannel: Kannel) -> None:
    token = callback_token(kannel.secret, "d-dlr-3")
    seen = []
    with httpx.Client(base_url=kannel.server.url, timeout=30) as client:
        for code in (8, 1, 8, 4, 2):
            answer = client.get("/v1/channels/sms/dlr", params={
                "delivery_id": "d-dlr-3", "status": str(code), "token": token})
            assert (answer.status_code, answer.text) == (200, "")
            seen.append(_sql(kannel.server, "SELECT status, sent_at IS NOT NULL, error FROM "
                                            "deliveries WHERE delivery_id = 'd-dlr-3'")[0])
    assert seen == [["sent", True, None], ["delivered", True, None],
                    ["delivered", True, None], ["delivered", True, None],
                    ["bounced", True, "delivery report: not delivered to the phone"]]


def _inject(kannel: Kannel, line: str) -> subprocess.Popen[bytes]:
    """An inbound message through the fake SMS centre "mo" (fakesmsc in send mode)."""
    return subprocess.Popen(
        [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(kannel.ports["mo"]), "-i", "0", "-m", "1",
         line], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=kannel.folder)


def _sms_consents(kannel: Kannel, customer_id: str) -> dict[str, bool]:
    with kannel.server.client("reader") as client:
        view = client.get(f"/v1/customers/{customer_id}").json()
    return {c["purpose"]: c["granted"] for c in view["consents"] if c["channel"] == "sms"}


@needs_kannel
def test_an_inbound_reply_and_stop_through_kannel(kannel: Kannel) -> None:
    marie, john = kannel.customers["Marie"], kannel.customers["John"]
    assert _sms_consents(kannel, marie) == {"marketing": True}

    # a reply that is not STOP: an interaction, no consent change
    sender = _inject(kannel, f"{PHONE} 38100 text Merci, à samedi")
    try:
        rows = wait_for(lambda: _sql(kannel.server, "SELECT type, direction, text, event_id "
                                     "FROM interactions WHERE channel = 'sms' AND "
                                     f"customer_id = '{marie}'"), "the inbound reply")
    finally:
        _stop(sender)
    assert rows[0][:3] == ["reply", "inbound", "Merci, à samedi"], kannel.log_tail()
    assert re.fullmatch(r"sms-in-[0-9a-f-]{36}", rows[0][3])  # Kannel's message id (%I)
    assert _sms_consents(kannel, marie) == {"marketing": True}

    sender = _inject(kannel, f"{PHONE} 38100 text Arrêt !")
    try:
        consents = wait_for(lambda: (c := _sms_consents(kannel, marie)).get("marketing")
                            is False and c, "the STOP")
    finally:
        _stop(sender)
    assert consents == {"advertising": False, "marketing": False, "service": False}
    with kannel.server.client("reader") as client:
        view = client.get(f"/v1/customers/{marie}").json()
    kinds = {(i["channel"], i["type"], i["direction"]) for i in view["interactions"]}
    assert {("sms", "stop", "inbound"), ("sms", "reply", "inbound")} <= kinds
    assert _sms_consents(kannel, john) == {"marketing": True}  # another number: untouched
    audit = _sql(kannel.server, "SELECT actor, action FROM audit_log WHERE customer_id = "
                                f"'{marie}' AND action = 'consent.change'")
    assert audit == [["channel:sms", "consent.change"]]
    # nothing was sent back to the sender (omit-empty, max-messages = 0)
    assert all(r[1] == PHONE and r[0] == "MaisonDupont" for r in kannel.received())


@needs_kannel
def test_a_stop_from_an_unknown_number_is_remembered(kannel: Kannel) -> None:
    sender = _inject(kannel, "+33698765432 38100 text STOP")
    try:
        found = wait_for(lambda: _sql(kannel.server, "SELECT customer_id FROM interactions "
                                      "WHERE type = 'stop' AND customer_id <> '"
                                      + kannel.customers["Marie"] + "'"), "the STOP")
    finally:
        _stop(sender)
    customer_id = found[0][0]
    assert _sms_consents(kannel, customer_id) == {
        "advertising": False, "marketing": False, "service": False}
