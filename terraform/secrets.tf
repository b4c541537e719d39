# The application's secrets, read by the External Secrets Operator into the Kubernetes Secret kiosk-secrets
# (k8s/base/externalsecret.yaml names these entries). Terraform makes the Django key; the Mercado Pago
# credentials and the database URL are put in by an operator (values never pass through this repository):
#   aws secretsmanager put-secret-value --secret-id kiosk/mercadopago \
#     --secret-string '{"access_token":"APP_USR-...","webhook_secret":"..."}'
#   aws secretsmanager put-secret-value --secret-id kiosk/database \
#     --secret-string '{"url":"mysql://kiosk:...@<db_endpoint>/kiosk?ssl_mode=REQUIRED"}'
# One AWS account per environment: the names are the same in staging and production.

resource "aws_secretsmanager_secret" "django" {
  #checkov:skip=CKV2_AWS_57:Rotating SECRET_KEY signs everyone out and voids pending links; done by hand, with a deploy
  name        = "kiosk/django"
  description = "Django SECRET_KEY and the /metrics bearer token (properties secret_key, metrics_token)"
  kms_key_id  = aws_kms_key.app.arn
}

resource "random_password" "django_secret_key" {
  length  = 64
  special = true
}

resource "random_password" "metrics_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret_version" "django" {
  secret_id = aws_secretsmanager_secret.django.id
  secret_string = jsonencode({
    secret_key    = random_password.django_secret_key.result
    metrics_token = random_password.metrics_token.result
  })
}

resource "aws_secretsmanager_secret" "mercadopago" {
  #checkov:skip=CKV2_AWS_57:Mercado Pago's credentials are issued in Mercado Pago's panel, not rotatable from AWS
  name        = "kiosk/mercadopago"
  description = "Mercado Pago access token and webhook secret signature (properties access_token, webhook_secret)"
  kms_key_id  = aws_kms_key.app.arn
}

resource "aws_secretsmanager_secret" "database" {
  #checkov:skip=CKV2_AWS_57:The application user's password is changed with the database user, by hand
  name        = "kiosk/database"
  description = "DATABASE_URL of the application's MySQL user (property url)"
  kms_key_id  = aws_kms_key.app.arn
}
