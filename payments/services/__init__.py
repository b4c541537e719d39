"""Every change to a payment, one module per concern; views, admin actions, commands and webhooks call these.

- checkout.py   a QR for an order (`payment_checkout`), money taken at the counter (`order_pay_at_counter`),
                and taking QRs away: `order_cancel_unpaid`, `orders_cancel_stale`
- apply.py      applying Mercado Pago's view of an order (`payment_apply_provider_order`): where a
                notification takes effect, and the money rules
- refunds.py    `refund_request` and everything that follows a refund until Mercado Pago confirms it
- review.py     the review queue: sync, approve, resolve
- reconcile.py  `payments_reconcile`: asking Mercado Pago about what no notification told us
- ledger.py     the primitives they all write with (ledger line, status move, review flag)

Reads live in `payments/selectors.py`; the status rules in `payments/transitions.py`.
"""
