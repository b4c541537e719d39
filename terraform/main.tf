# The network and the Kubernetes cluster, with the community modules (terraform-aws-modules), pinned.

locals {
  name            = "kiosk-${var.environment}"
  private_subnets = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, 200 + i)]
  db_subnets      = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, 220 + i)]
}

data "aws_caller_identity" "current" {}

# Public subnets hold only the load balancer and the NAT gateways; the pods and the database are private.
module "vpc" {
  #checkov:skip=CKV_TF_1:A registry module pinned to an exact version: the registry's releases are immutable
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.16.0"

  name                                 = local.name
  cidr                                 = var.vpc_cidr
  azs                                  = var.availability_zones
  private_subnets                      = local.private_subnets
  public_subnets                       = local.public_subnets
  database_subnets                     = local.db_subnets
  create_database_subnet_group         = true
  enable_nat_gateway                   = true
  one_nat_gateway_per_az               = var.environment == "production"
  single_nat_gateway                   = var.environment != "production"
  enable_dns_hostnames                 = true
  map_public_ip_on_launch              = false
  manage_default_security_group        = true
  default_security_group_ingress       = []
  default_security_group_egress        = []
  enable_flow_log                      = true
  create_flow_log_cloudwatch_log_group = true
  create_flow_log_cloudwatch_iam_role  = true
  flow_log_max_aggregation_interval    = 60

  public_subnet_tags  = { "kubernetes.io/role/elb" = 1 }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = 1 }
}

# EKS with a managed node group in the private subnets; the API endpoint is private unless
# cluster_admin_cidrs names the networks allowed to reach it. Secrets in etcd are encrypted with KMS.
module "eks" {
  #checkov:skip=CKV_TF_1:A registry module pinned to an exact version: the registry's releases are immutable
  source  = "terraform-aws-modules/eks/aws"
  version = "20.31.6"

  cluster_name                             = local.name
  cluster_version                          = var.kubernetes_version
  vpc_id                                   = module.vpc.vpc_id
  subnet_ids                               = module.vpc.private_subnets
  cluster_endpoint_private_access          = true
  cluster_endpoint_public_access           = length(var.cluster_admin_cidrs) > 0
  cluster_endpoint_public_access_cidrs     = var.cluster_admin_cidrs
  enable_irsa                              = true
  enable_cluster_creator_admin_permissions = true
  cluster_enabled_log_types                = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  cluster_encryption_config                = { resources = ["secrets"] }

  eks_managed_node_groups = {
    default = {
      instance_types = var.node_instance_types
      min_size       = var.node_min_size
      max_size       = var.node_max_size
      desired_size   = var.node_min_size
      subnet_ids     = module.vpc.private_subnets
      metadata_options = {
        http_tokens                 = "required"
        http_put_response_hop_limit = 1 # pods cannot reach the node's instance metadata (they use IRSA)
      }
    }
  }
}

# One key for what this application stores: the database, its backups and insights, the secrets, the images.
resource "aws_kms_key" "app" {
  description             = "${local.name}: database, secrets, container images"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "app" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.app.key_id
}
