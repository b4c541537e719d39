# The image registry: tags cannot be overwritten (a deploy names exactly what runs), images are scanned on
# push, and untagged ones expire.
resource "aws_ecr_repository" "kiosk" {
  name                 = "kiosk"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.app.arn
  }
}

resource "aws_ecr_lifecycle_policy" "kiosk" {
  repository = aws_ecr_repository.kiosk.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Untagged images go after 14 days"
      selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 14 }
      action       = { type = "expire" }
    }]
  })
}
