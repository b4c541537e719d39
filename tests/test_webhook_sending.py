"""Sending to a subscriber's URL: only to the address that was checked, never for longer than the deadline,
never by two senders at once (kiosk/events/outbound.py, kiosk/events/delivery.py)."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from kiosk.events import delivery as delivery_module
from kiosk.events.delivery import deliver, send_again
from kiosk.events.models import EventDelivery, WebhookEndpoint
from kiosk.events.outbound import UrlNotAllowed, address_refused, check_url
from kiosk.events.services import emit
from kiosk.worker import run_pending
from orders.models import Order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "fd00::1",
        "fe80::1%eth0",
        "224.0.0.1",
    ],
)
def test_hidden_private_addresses_are_refused(address, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert address_refused(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"])
def test_public_addresses_pass(address, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert not address_refused(address)


def test_port_zero_is_refused():
    with pytest.raises(UrlNotAllowed, match="port"):
        check_url("http://93.184.216.34:0/hook")


def test_a_name_that_rebinds_to_loopback_after_the_check_reaches_nothing(endpoint, order, subscriber, settings):
    """DNS rebinding: the name answers a public address when it is checked and 127.0.0.1 when the connection
    is made. The address actually connected to is checked before a byte is sent."""
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    port = int(subscriber.url.split(":")[2].split("/")[0])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://rebind.example:{port}/hooks/kiosk")
    real, asked = socket.getaddrinfo, []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        asked.append(host)
        address = "93.184.216.34" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    socket.getaddrinfo = rebinding
    try:
        assert deliver(EventDelivery.objects.get().pk).startswith("failed")
    finally:
        socket.getaddrinfo = real
    assert len(asked) == 2 and subscriber.requests == 0  # checked, connected, refused before sending
    assert "connected to 127.0.0.1" in EventDelivery.objects.get().last_error


@pytest.fixture
def dripping_server():
    """Accepts a connection and answers one byte every 0.2 s, for ever: a subscriber that never finishes."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"x" * 1000:
                        if stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(0.2)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hooks/kiosk"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_subscriber_that_drips_its_answer_is_cut_off_at_the_deadline(order, dripping_server, settings):
    settings.WEBHOOK_TIMEOUT = 0.5  # each read gets 0.5 s, and the whole exchange 1 s
    WebhookEndpoint.objects.create(url=dripping_server, events=["*"])
    with transaction.atomic():
        emit("order.status_changed", order=Order.objects.get(pk=order["id"]), data={})
    started = time.monotonic()
    outcome = deliver(EventDelivery.objects.get().pk)
    assert time.monotonic() - started < 3  # not the 200 s the drip would take
    delivery = EventDelivery.objects.get()
    assert outcome.startswith("failed") and "no complete answer within 1 s" in delivery.last_error
    assert delivery.status == "pending" and delivery.locked_until is None  # retried later, by anyone


def test_send_again_leaves_a_delivery_on_its_way_alone(endpoint, order, subscriber):
    delivery = EventDelivery.objects.get()
    lease = timezone.now() + timedelta(minutes=1)
    EventDelivery.objects.filter(pk=delivery.pk).update(locked_until=lease)  # a worker is sending it
    assert send_again([delivery.pk]) == 0
    delivery.refresh_from_db()
    assert delivery.locked_until == lease and subscriber.requests == 0


def test_a_sender_that_lost_its_lease_does_not_write_the_outcome(endpoint, order, subscriber, monkeypatch):
    """A worker stalled past its lease while another took the delivery over: the late one's answer is kept
    as an attempt, but the delivery's state is the new sender's to write."""
    delivery = EventDelivery.objects.get()
    original = delivery_module._post

    def stalled(d):
        answer = original(d)
        later = timezone.now() + timedelta(minutes=5)
        EventDelivery.objects.filter(pk=d.pk).update(locked_until=later)  # another worker's claim
        return answer

    monkeypatch.setattr(delivery_module, "_post", stalled)
    assert deliver(delivery.pk) == "lease lost while sending"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.attempt_log.count()) == ("pending", 0, 1)
    monkeypatch.undo()
    run_pending()  # nothing due: the delivery is the other worker's until its lease ends
    assert EventDelivery.objects.get().status == "pending"
