from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SimulatorConfig(AppConfig):
    """A local stand-in for the parts of Mercado Pago's API we use (simulator mode only)."""

    name = "payments.simulator"
    label = "mp_simulator"
    verbose_name = _("Mercado Pago simulator")
