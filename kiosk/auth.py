"""Tokens: a refresh token is used once (rotated, the used one blacklisted), a logout revokes it, and a
password change or a deactivated account makes the user's tokens worthless (simplejwt's own mechanisms:
the blacklist app, CHECK_REVOKE_TOKEN, CHECK_USER_IS_ACTIVE; this module only closes what they leave open)."""

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, which checks neither the password-change claim nor a deleted account (it would
    answer 500): a refresh token issued before the password changed is refused like its access tokens."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed("No active account found for the given token.", "no_active_account")
        claim = refresh.payload.get(api_settings.REVOKE_TOKEN_CLAIM)
        if api_settings.CHECK_REVOKE_TOKEN and claim != get_md5_hash_password(user.password):
            raise AuthenticationFailed("The user's password has changed: log in again.", "password_changed")
        return super().validate(attrs)
