"""x-signature verification exactly as Mercado Pago documents it."""

import hashlib
import hmac
import time

import pytest

from payments.webhooks import parse_signature, signature_manifest, verify_signature

SECRET = "test-secret-signature"


def sign(manifest: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def test_manifest_follows_the_documented_template():
    assert signature_manifest(data_id="ORD01ABC", request_id="req-1", ts="1704908010") == (
        "id:ord01abc;request-id:req-1;ts:1704908010;"
    )


def test_missing_parts_are_dropped_from_the_manifest():
    assert signature_manifest(data_id="", request_id="req-1", ts="17") == "request-id:req-1;ts:17;"
    assert signature_manifest(data_id="123", request_id="", ts="17") == "id:123;ts:17;"


def test_non_alphanumeric_ids_keep_their_case():
    assert signature_manifest(data_id="AB-12", request_id="r", ts="1") == "id:AB-12;request-id:r;ts:1;"


def test_parse_splits_on_commas_then_on_the_first_equals():
    assert parse_signature("ts=1704908010, v1=abc=def") == {"ts": "1704908010", "v1": "abc=def"}


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_good_signatures_in_seconds_and_milliseconds(unit, settings):
    now = time.time()
    ts = str(int(now * 1000) if unit == "ms" else int(now))
    v1 = sign(f"id:ord01xyz;request-id:rid;ts:{ts};")
    header = f"ts={ts},v1={v1}"
    assert verify_signature(header=header, data_id="ORD01XYZ", request_id="rid", secret=SECRET, now=now) == ""


def test_signature_without_request_id_still_verifies():
    ts = str(int(time.time()))
    header = f"ts={ts},v1={sign(f'id:123;ts:{ts};')}"
    assert verify_signature(header=header, data_id="123", request_id="", secret=SECRET) == ""


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("", "missing"),
        ("v1=abc", "lacks"),
        ("ts=123", "lacks"),
        ("ts=abc,v1=def", "not a number"),
        ("garbage", "lacks"),
    ],
)
def test_malformed_headers_are_refused(header, why):
    assert why in verify_signature(header=header, data_id="1", request_id="r", secret=SECRET)


def test_wrong_secret_wrong_id_and_tampering_are_refused():
    ts = str(int(time.time()))
    v1 = sign(f"id:ord1;request-id:r;ts:{ts};")
    header = f"ts={ts},v1={v1}"
    assert verify_signature(header=header, data_id="ORD1", request_id="r", secret="other") != ""
    assert verify_signature(header=header, data_id="ORD2", request_id="r", secret=SECRET) != ""
    assert verify_signature(header=header, data_id="ORD1", request_id="r2", secret=SECRET) != ""
    assert verify_signature(header=f"ts={int(ts) + 1},v1={v1}", data_id="ORD1", request_id="r", secret=SECRET) != ""


def test_old_timestamps_are_refused_unless_the_window_is_off(settings):
    old = str(int(time.time()) - 3600)
    header = f"ts={old},v1={sign(f'id:1;request-id:r;ts:{old};')}"
    settings.MERCADOPAGO_SIGNATURE_TOLERANCE = 600
    assert "window" in verify_signature(header=header, data_id="1", request_id="r", secret=SECRET)
    settings.MERCADOPAGO_SIGNATURE_TOLERANCE = 0
    assert verify_signature(header=header, data_id="1", request_id="r", secret=SECRET) == ""
