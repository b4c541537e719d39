"""CPF (Brazilian taxpayer id) parsing, validation and masking."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from validate_docbr import CPF as _CPF

_FORMAT = re.compile(r"^\s*(\d{3})\.?(\d{3})\.?(\d{3})[-.]?(\d{2})\s*$")
_validator = _CPF()


def normalize_cpf(value) -> str:
    """Returns the 11 digits of a valid CPF written in any common format, or raises ValidationError."""
    match = _FORMAT.match(value) if isinstance(value, str) else None
    digits = "".join(match.groups()) if match else ""
    if not digits or not _validator.validate(digits):
        raise ValidationError(_("Enter a valid CPF (11 digits with valid check digits)."), code="invalid_cpf")
    return digits


def validate_cpf(value: str) -> None:
    if normalize_cpf(value) != value:
        raise ValidationError(_("Store the CPF as 11 digits."), code="invalid_cpf")


def mask_cpf(cpf: str | None) -> str:
    """`***.456.789-**`: enough for a person to recognise their own CPF, not enough to use someone else's.
    An anonymised customer has none: ""."""
    if not cpf:
        return ""
    if len(cpf) != 11:
        return "***"
    return f"***.{cpf[3:6]}.{cpf[6:9]}-**"


def mask_email(email: str) -> str:
    if not email or "@" not in email:
        return ""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"
