"""Tokens: a refresh token is used once (rotated, the used one blacklisted), a logout revokes it, and a
password change or a deactivated account makes the user's tokens worthless (simplejwt's own mechanisms:
the blacklist app, CHECK_REVOKE_TOKEN, CHECK_USER_IS_ACTIVE; this module only closes what they leave open)."""

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.translation import gettext, ngettext
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers as jwt
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password
from rest_framework_simplejwt.views import TokenObtainPairView

from kiosk.api import StrictCharField, StrictMixin
from kiosk.problems import DomainError, problem_json_response

# simplejwt's serializers, taking JSON at its word like the rest of the API: an unknown field or a number
# where a string belongs is a 400 validation_error, not a silently ignored member or a 401. Named as
# simplejwt's are: the schema's components keep their names.


class TokenObtainPairSerializer(StrictMixin, jwt.TokenObtainPairSerializer):
    """A login: a user name and a password in, a refresh and an access token out."""

    # What the answer holds (simplejwt's schema extension, which said so, knows only simplejwt's own class).
    refresh = StrictCharField(read_only=True)
    access = StrictCharField(read_only=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StrictCharField(write_only=True)
        # As typed, like the admin's login form (simplejwt would trim it).
        self.fields["password"] = StrictCharField(
            write_only=True, trim_whitespace=False, style={"input_type": "password"}
        )


class TokenBlacklistSerializer(StrictMixin, jwt.TokenBlacklistSerializer):
    """A logout: the refresh token to revoke."""

    refresh = StrictCharField(write_only=True)


class RefreshSerializer(StrictMixin, jwt.TokenRefreshSerializer):
    """simplejwt's refresh, which checks neither the password-change claim nor a deleted account (it would
    answer 500): a refresh token issued before the password changed is refused like its access tokens."""

    refresh = StrictCharField()

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(gettext("No active account found for the given token."), "no_active_account")
        claim = refresh.payload.get(api_settings.REVOKE_TOKEN_CLAIM)
        if api_settings.CHECK_REVOKE_TOKEN and claim != get_md5_hash_password(user.password):
            raise AuthenticationFailed(gettext("The user's password has changed: log in again."), "password_changed")
        return super().validate(attrs)


# --- Brute force: django-axes counts failed logins per user name and per address ----------------------


class TooManyFailedLogins(DomainError):
    status = 429
    code = "too_many_failed_logins"

    def __init__(self):
        seconds = int(get_cool_off().total_seconds())
        minutes = seconds // 60
        super().__init__(
            ngettext(
                "Too many failed logins for this user or from this address: try again in %(minutes)d minute.",
                "Too many failed logins for this user or from this address: try again in %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes},
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


def client_ip(request) -> str:
    """The address a login comes from. Behind the TLS proxy, the one the proxy appended to X-Forwarded-For
    (REMOTE_ADDR is the proxy itself: counting it would lock everybody out together)."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1][:45]
    return request.META.get("REMOTE_ADDR", "")


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out login gets: 429 with Retry-After; a page in the admin's look for a browser on the
    admin's login form, problem+json otherwise."""
    error = TooManyFailedLogins()
    if request.path.startswith(f"/{settings.ADMIN_URL}") and "json" not in request.headers.get("Accept", ""):
        from django.contrib import admin
        from django.template.response import TemplateResponse

        context = {
            **admin.site.each_context(request),
            "title": gettext("Log in"),
            "minutes": error.extra["retry_after"] // 60,
        }
        response = TemplateResponse(request, "admin/lockout.html", context, status=error.status)
        response.render()
    else:
        response = problem_json_response(status=error.status, code=error.code, detail=error.detail)
    response["Retry-After"] = error.headers["Retry-After"]
    return response


class TokenObtainView(TokenObtainPairView):
    """simplejwt's login, answering 429 with Retry-After when axes has locked the user or the address out
    (axes marks the request; DRF's request is not the one its middleware looks at)."""

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise TooManyFailedLogins() from None
            raise
