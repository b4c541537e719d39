"""Payments, the payment ledger and the Mercado Pago notification inbox (coming with the checkout)."""
