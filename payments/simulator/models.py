"""State of the Mercado Pago simulator: its orders, transactions and refunds."""
