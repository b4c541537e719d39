# The pods' role (IRSA): the Kubernetes service account kiosk/kiosk (k8s/base/serviceaccount.yaml) may read
# the application's secrets, and nothing else. The External Secrets Operator's ClusterSecretStore
# authenticates with this service account.

locals {
  oidc_issuer = replace(module.eks.cluster_oidc_issuer_url, "https://", "")
}

resource "aws_iam_role" "pods" {
  name = "${local.name}-pods"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = module.eks.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_issuer}:sub" = "system:serviceaccount:kiosk:kiosk"
          "${local.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "pods_read_secrets" {
  name = "read-kiosk-secrets"
  role = aws_iam_role.pods.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = [
          aws_secretsmanager_secret.django.arn,
          aws_secretsmanager_secret.mercadopago.arn,
          aws_secretsmanager_secret.database.arn,
        ]
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [aws_kms_key.app.arn]
      },
    ]
  })
}
