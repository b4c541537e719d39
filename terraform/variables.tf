variable "region" {
  description = "AWS region (São Paulo by default: the restaurants and Mercado Pago are in Brazil)."
  type        = string
  default     = "sa-east-1"
}

variable "environment" {
  description = "Environment name, used in resource names and tags: staging or production."
  type        = string
  default     = "production"

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC. The Kubernetes NetworkPolicies (k8s/base/networkpolicy.yaml) allow this range."
  type        = string
  default     = "10.0.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones for the subnets (at least two: EKS and a Multi-AZ database need them)."
  type        = list(string)
  default     = ["sa-east-1a", "sa-east-1b", "sa-east-1c"]
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the manifests are validated against 1.32)."
  type        = string
  default     = "1.32"
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["t3.large"]
}

variable "node_min_size" {
  description = "Smallest number of nodes."
  type        = number
  default     = 2
}

variable "node_max_size" {
  description = "Largest number of nodes (the pods' autoscalers need room to grow into)."
  type        = number
  default     = 6
}

variable "cluster_admin_cidrs" {
  description = "Networks allowed to reach the EKS API endpoint publicly; empty keeps the endpoint private only."
  type        = list(string)
  default     = []
}

variable "db_instance_class" {
  description = "RDS instance class of the MySQL 8 database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial storage of the database, in GiB (it grows by itself up to db_max_allocated_storage)."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage" {
  description = "Ceiling of the database's storage autoscaling, in GiB."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "A standby database in another zone, failed over to automatically (on for production)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery) the database keeps."
  type        = number
  default     = 14
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off only to tear an environment down on purpose)."
  type        = bool
  default     = true
}
