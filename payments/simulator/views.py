"""HTTP face of the Mercado Pago simulator, mounted at /mp-simulator/ in simulator mode only.

/mp-simulator/v1/...                      the simulated API over HTTP (same dispatcher as the SDK client)
POST /mp-simulator/v1/orders/{id}/simulate  settle an order: approved | rejected | expired, or charge a paid
                                          one back: charged_back (a test hook, not a Mercado Pago endpoint)
POST /mp-simulator/v1/orders/{id}/refunds/confirm
                                          settle the order's processing refunds now, {"outcome": "processed"
                                          | "failed"} or their own outcome (a test hook: rehearse a refund
                                          that fails, or skip the wait)
/mp-simulator/pay/{id}/                   the page the QR points to: the "buyer's phone", Pagar / Recusar

What they change is notified later, as everything the simulator notifies (see notify.py).
"""

import json
from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from payments.simulator import engine, shapes
from payments.simulator.api import ORDER_ID, dispatch
from payments.simulator.errors import ApiError, orders_error

SIMULATE_FIELDS = {"outcome", "duplicates", "delay_s", "paid_amount", "signature_ts"}
CONFIRM_FIELDS = {"outcome"}


@csrf_exempt  # an API authenticated by its Bearer token, called by programs, not browsers
def api_view(request: HttpRequest, api_path: str) -> HttpResponse:
    status, body = dispatch(
        request.method,
        "/" + api_path,
        headers=dict(request.headers),
        params=request.GET.dict(),
        body=request.body,
    )
    if body is None:
        return HttpResponse(status=status)
    return JsonResponse(body, status=status, safe=False)


def _hook_body(request: HttpRequest, fields: set[str], *, empty_ok: bool) -> dict:
    """The JSON object a test hook was POSTed, with only `fields` in it (Orders API errors otherwise)."""
    if request.method != "POST":
        raise orders_error(405, "method_not_allowed", "Use POST.")
    if empty_ok and not request.body.strip():
        return {}
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, RecursionError) as exc:
        raise orders_error(400, "json_syntax_error", f"The body is not valid JSON: {exc}.")
    if not isinstance(data, dict):
        raise orders_error(400, "property_type", "The body must be a JSON object.", ["$"])
    unknown = sorted(set(data) - fields)
    if unknown:
        raise orders_error(400, "unsupported_properties", "Unsupported properties.", [f"$.{n}" for n in unknown])
    return data


@csrf_exempt  # a test hook for scripts and the kiosk developer's curl, like the API it sits in
def simulate_view(request: HttpRequest, order_id: str) -> HttpResponse:
    """POST {"outcome", "duplicates"?, "delay_s"?, "paid_amount"?, "signature_ts"?} -> 200 with the order."""
    try:
        data = _hook_body(request, SIMULATE_FIELDS, empty_ok=False)
        if "outcome" not in data:
            raise orders_error(400, "required_properties", "Missing required properties.", ["$.outcome"])
        order = engine.simulate(
            order_id,
            data["outcome"],
            duplicates=data.get("duplicates", 0),
            delay_s=data.get("delay_s"),
            paid_amount=data.get("paid_amount"),
            signature_ts=data.get("signature_ts", "ms"),
        )
    except ApiError as exc:
        return JsonResponse(exc.body, status=exc.status)
    return JsonResponse(order, status=200)


@csrf_exempt  # a test hook, like /simulate
def confirm_refunds_view(request: HttpRequest, order_id: str) -> HttpResponse:
    """POST (no body, or {"outcome": "processed" | "failed"}) -> 200 with the order once its processing
    refunds are settled (and order.refunded queued); 409 no_refund_in_progress when it has none."""
    try:
        data = _hook_body(request, CONFIRM_FIELDS, empty_ok=True)
        outcome = data.get("outcome")
        if "outcome" in data and not isinstance(outcome, str):
            raise orders_error(400, "property_type", "outcome must be a string.", ["$.outcome"])
        if outcome is not None and outcome not in engine.REFUND_OUTCOMES:
            raise orders_error(400, "property_value", "outcome must be processed or failed.", ["$.outcome"])
        if not ORDER_ID.match(order_id):
            raise orders_error(
                400,
                "invalid_path_param",
                "The order id is invalid: it begins with the prefix ORD followed by 26 characters.",
            )
        with transaction.atomic():
            engine.lock_order(order_id, settle=False)  # 404 for an unknown order
            if not engine.confirm_refunds(order_id, outcome=outcome, everything=True):
                raise orders_error(409, "no_refund_in_progress", "The order has no refund being processed.")
            order = shapes.order_json(engine.lock_order(order_id, settle=False))
    except ApiError as exc:
        return JsonResponse(exc.body, status=exc.status)
    return JsonResponse(order, status=200)


def _brl(amount: str) -> str:
    """25.90 -> "R$ 25,90" in Portuguese (thousands with a dot), "R$ 25.90" in English."""
    return f"R$ {number_format(Decimal(amount), decimal_pos=2, force_grouping=True)}"


STATUS_TEXT = {
    "created": _("Awaiting payment"),
    "processed": _("Payment approved"),
    "failed": _("Payment declined"),
    "expired": _("QR expired"),
    "canceled": _("Order cancelled"),
    "refunded": _("Payment refunded"),
}


@require_http_methods(["GET", "POST"])
def pay_page(request: HttpRequest, order_id: str) -> HttpResponse:
    """The buyer's side: GET shows what is being paid; POST action=pay|reject settles it, then shows the result."""
    error = ""
    if request.method == "POST":
        outcome = {"pay": "approved", "reject": "rejected"}.get(request.POST.get("action", ""))
        if outcome is None:
            error = gettext("Unknown action.")
        else:
            try:
                engine.simulate(order_id, outcome)
            except ApiError as exc:
                error = exc.body["errors"][0]["message"]
            else:
                return redirect(request.path)  # post/redirect/get: reloading does not pay twice

    with transaction.atomic():
        try:
            sim_order = engine.lock_order(order_id)  # settles its due refunds, like every read
        except ApiError:
            return render(request, "mp_simulator/pay.html", {"not_found": True, "order_id": order_id}, status=404)
        engine.expire_if_due(sim_order)
        order = shapes.order_json(sim_order)

    items = [
        {
            "title": item.get("title", ""),
            "quantity": item.get("quantity", 1),
            "unit_price": _brl(item["unit_price"]),
            "line_total": _brl(str(Decimal(item["unit_price"]) * item.get("quantity", 1))),
        }
        for item in order.get("items", [])
    ]
    context = {
        "order": order,
        "items": items,
        "total": _brl(order["total_amount"]),
        "paid": _brl(order["total_paid_amount"]) if "total_paid_amount" in order else "",
        "status_text": STATUS_TEXT.get(order["status"], order["status"]),
        "payable": order["status"] == "created",
        "error": error,
    }
    return render(request, "mp_simulator/pay.html", context, status=409 if error else 200)
