"""Idempotency-Key: retries and double taps never create two orders; misuse is told apart clearly."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from kiosk.models import IdempotencyRecord
from orders.models import Order, Product
from tests.conftest import client_for, place

pytestmark = pytest.mark.django_db


def items(menu, quantity=1):
    return [{"product_id": menu["juice"].pk, "quantity": quantity}]


def test_same_key_and_body_replays_the_stored_response(kiosk, menu):
    first = place(kiosk, items(menu), key="tap-1")
    second = place(kiosk, items(menu), key="tap-1")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert second.json() == first.json()
    assert second["Location"] == first["Location"]
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=menu["juice"].pk).stock == 2


def test_key_order_of_json_fields_does_not_matter(kiosk, menu):
    pid = menu["juice"].pk
    body_a = f'{{"items": [{{"product_id": {pid}, "quantity": 1}}], "customer_cpf": null}}'
    body_b = f'{{"customer_cpf": null, "items": [{{"quantity": 1, "product_id": {pid}}}]}}'
    first = kiosk.post("/api/v1/orders/", body_a, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    second = kiosk.post("/api/v1/orders/", body_b, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert second["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]


def test_same_key_with_a_different_body_is_422(kiosk, menu):
    place(kiosk, items(menu, 1), key="tap-1")
    response = place(kiosk, items(menu, 2), key="tap-1")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_keys_belong_to_their_caller(kiosk, other_terminal, menu):
    mine = place(kiosk, items(menu), key="shared")
    theirs = place(client_for(other_terminal.user), items(menu), key="shared")
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert mine.json()["id"] != theirs.json()["id"]


def test_same_key_while_the_first_is_still_running_is_409(kiosk, terminal, menu):
    place(kiosk, items(menu), key="busy")
    # Rewind the record to how it looks while the first request is still inside its transaction.
    IdempotencyRecord.objects.filter(key="busy").update(state="processing", response_status=None, response_body=None)
    response = place(kiosk, items(menu), key="busy")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_request_in_progress"
    assert Order.objects.count() == 1


def test_a_processing_record_left_by_a_dead_process_is_taken_over(kiosk, terminal, menu, settings):
    record = IdempotencyRecord.objects.create(
        user=terminal.user,
        key="crashed",
        request_method="POST",
        request_path="/api/v1/orders/",
        request_hash="whatever",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        updated_at=timezone.now() - settings.IDEMPOTENCY_STALE_AFTER * 2
    )
    response = place(kiosk, items(menu), key="crashed")
    assert response.status_code == 201
    assert IdempotencyRecord.objects.get(key="crashed").state == "completed"


@pytest.mark.parametrize(
    ("headers", "detail_part"),
    [
        ({}, "required"),
        ({"HTTP_IDEMPOTENCY_KEY": ""}, "1 to 255"),
        ({"HTTP_IDEMPOTENCY_KEY": "x" * 256}, "1 to 255"),
        ({"HTTP_IDEMPOTENCY_KEY": "has space"}, "printable"),
    ],
)
def test_missing_or_malformed_key_is_400(kiosk, menu, headers, detail_part):
    response = kiosk.post("/api/v1/orders/", {"items": items(menu)}, format="json", **headers)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_invalid"
    assert detail_part in response.json()["detail"]
    assert not Order.objects.exists()


def test_a_255_character_key_is_fine(kiosk, menu):
    assert place(kiosk, items(menu), key="k" * 255).status_code == 201


def test_a_failed_request_stores_nothing_so_the_key_can_be_retried(kiosk, menu):
    too_many = place(kiosk, items(menu, 3), key="retry-me")
    assert too_many.status_code == 201
    response = place(kiosk, items(menu, 1), key="sold-out")
    assert response.json()["code"] == "out_of_stock"
    assert not IdempotencyRecord.objects.filter(key="sold-out").exists()

    Product.objects.filter(pk=menu["juice"].pk).update(stock=5)
    response = place(kiosk, items(menu, 1), key="sold-out")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


def test_expired_keys_are_purged_and_can_be_used_again(kiosk, menu, settings):
    first = place(kiosk, items(menu), key="old")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("purge_idempotency_keys")
    assert not IdempotencyRecord.objects.exists()
    second = place(kiosk, items(menu), key="old")
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


def test_an_expired_but_not_yet_purged_key_starts_afresh(kiosk, menu):
    first = place(kiosk, items(menu), key="old")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    second = place(kiosk, items(menu), key="old")
    assert "Idempotent-Replayed" not in second
    assert second.json()["id"] != first.json()["id"]
