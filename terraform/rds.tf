# MySQL 8 on RDS: private, encrypted, backed up, Multi-AZ by default. Its master password is made and
# rotated by RDS in Secrets Manager (manage_master_user_password); the application connects with the
# DATABASE_URL kept in the secret kiosk/database (see docs/operations.md#terraform-aws).
# RDS comes with MySQL's time zone tables loaded: Django's date conversions work without a step of ours.

resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "MySQL: reachable from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_nodes" {
  security_group_id            = aws_security_group.db.id
  description                  = "MySQL from the Kubernetes nodes (the pods)"
  referenced_security_group_id = module.eks.node_security_group_id
  from_port                    = 3306
  to_port                      = 3306
  ip_protocol                  = "tcp"
}

resource "aws_db_parameter_group" "mysql" {
  name   = "${local.name}-mysql8"
  family = "mysql8.0"

  parameter {
    name  = "character_set_server"
    value = "utf8mb4"
  }
  parameter {
    name  = "collation_server"
    value = "utf8mb4_unicode_ci"
  }
  parameter {
    name  = "transaction_isolation"
    value = "READ-COMMITTED"
  }
  # Connections without TLS are refused: the application's DATABASE_URL ends in ?ssl_mode=REQUIRED.
  parameter {
    name  = "require_secure_transport"
    value = "1"
  }
  # What holds a lock too long shows here (the services lock an order and its payments for milliseconds).
  parameter {
    name  = "slow_query_log"
    value = "1"
  }
  parameter {
    name  = "long_query_time"
    value = "1"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${local.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "main" {
  identifier                            = local.name
  engine                                = "mysql"
  engine_version                        = "8.0"
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage
  max_allocated_storage                 = var.db_max_allocated_storage
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.app.arn
  db_name                               = "kiosk"
  username                              = "kiosk_admin"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = aws_kms_key.app.key_id
  iam_database_authentication_enabled   = true
  db_subnet_group_name                  = module.vpc.database_subnet_group_name
  vpc_security_group_ids                = [aws_security_group.db.id]
  parameter_group_name                  = aws_db_parameter_group.mysql.name
  publicly_accessible                   = false
  multi_az                              = var.db_multi_az
  backup_retention_period               = var.db_backup_retention_days
  backup_window                         = "06:00-07:00" # 03:00-04:00 in São Paulo, restaurants closed
  maintenance_window                    = "Mon:07:00-Mon:08:00"
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.db_deletion_protection
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${local.name}-final"
  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["error", "slowquery"]
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.app.arn
  performance_insights_retention_period = 7
  apply_immediately                     = false
}
