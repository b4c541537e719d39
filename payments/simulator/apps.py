from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """A local stand-in for the parts of Mercado Pago's API we use (simulator mode only)."""

    name = "payments.simulator"
    label = "mp_simulator"
    verbose_name = "Mercado Pago simulator"
