output "cluster_name" {
  description = "EKS cluster name: `aws eks update-kubeconfig --name <it>`."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.cluster_endpoint
}

output "ecr_repository_url" {
  description = "Where to push the image; the kustomize overlays' `images[].newName`."
  value       = aws_ecr_repository.kiosk.repository_url
}

output "db_endpoint" {
  description = "MySQL host:port, for the DATABASE_URL put in the secret kiosk/database."
  value       = aws_db_instance.main.endpoint
}

output "db_master_user_secret_arn" {
  description = "The Secrets Manager entry RDS keeps the master password in (to create the application's user)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "pod_role_arn" {
  description = "IAM role of the pods: the annotation eks.amazonaws.com/role-arn of k8s/base/serviceaccount.yaml."
  value       = aws_iam_role.pods.arn
}

output "vpc_cidr" {
  description = "The VPC's range: the NetworkPolicies in k8s/base/networkpolicy.yaml allow it."
  value       = module.vpc.vpc_cidr_block
}
