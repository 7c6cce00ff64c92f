"""HostFleet: `hosts` identical MLflow hosts in an Auto Scaling group, behind the LoadBalancer.

Each host boots from the stack's LaunchShape (components/launch_shape.py), the single host's launch
template, here carrying the user data rendered for "behind a load balancer" (userdata: nginx on 80 for the
load balancer only, no certbot). The group spreads the hosts over the public subnets (two AZs), keeps
min = max = desired = hosts, replaces a host the load balancer finds unhealthy, and rolls every new template
version (user data: a new MLflow release; instance type; a refreshed image) through an instance refresh that
launches each new host before it terminates an old one. A release that migrates a schema is ordered by the
hosts themselves: the first new host fences every other writer before it migrates (userdata, the configure
step), so no old host serves the migrated schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.launch_shape import LaunchShape

# A first boot installs MLflow (a few minutes) and may wait for RDS, created in parallel on the first
# `pulumi up` (design decision 2: up to ~20 minutes for Multi-AZ): the load balancer's verdict counts
# only after this long. Later failures are acted on at once.
FIRST_BOOT_GRACE_SECONDS = 1800
# `pulumi up` waits this long for the group's hosts to pass the load balancer's health check.
CAPACITY_TIMEOUT = "35m"
# An instance refresh counts a new host as ready this long after it is healthy: its first requests
# warm MLflow's imports.
INSTANCE_WARMUP_SECONDS = 60
# Full capacity throughout: a replacement is launched (up to 2x the hosts) and healthy before an old
# host is drained and terminated.
MIN_HEALTHY_PERCENTAGE = 100
MAX_HEALTHY_PERCENTAGE = 200
# The admin restart (ServerRestart) takes a host out of the target group, restarts MLflow, puts it back.
ROTATION_ACTIONS = ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"]
# These describe calls support no resource-level permissions (AWS's Service Authorization Reference for
# Elastic Load Balancing V2 and EC2 Auto Scaling list no resource type for them): "*", read-only.
ROTATION_LOOKUPS = ["elasticloadbalancing:DescribeTargetHealth", "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeAutoScalingGroups"]


def rotation_policy(target_group_arn: str) -> str:
    statements: list[dict[str, Any]] = [
        {"Sid": "RotateOwnTargetGroup", "Effect": "Allow", "Action": ROTATION_ACTIONS, "Resource": target_group_arn},
        {"Sid": "FindOwnTargetGroup", "Effect": "Allow", "Action": ROTATION_LOOKUPS, "Resource": "*"},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass
class HostFleetArgs:
    hosts: int
    shape: LaunchShape
    subnet_ids: list[pulumi.Output[str]]
    target_group_arn: pulumi.Input[str]
    role_name: pulumi.Input[str]  # the hosts' role: it may take its own host out of the target group


class HostFleet(pulumi.ComponentResource):
    group_name: pulumi.Output[str]

    def __init__(self, name: str, args: HostFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:HostFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        group = aws.autoscaling.Group(
            f"{name}-hosts",
            min_size=args.hosts,
            max_size=args.hosts,
            desired_capacity=args.hosts,
            vpc_zone_identifiers=args.subnet_ids,
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=args.shape.launch_template_id, version=args.shape.launch_template_version
            ),
            target_group_arns=[args.target_group_arn],
            health_check_type="ELB",
            health_check_grace_period=FIRST_BOOT_GRACE_SECONDS,
            wait_for_elb_capacity=args.hosts,
            wait_for_capacity_timeout=CAPACITY_TIMEOUT,
            # The same rule for every other replacement (a host found unhealthy, a rebalance across AZs):
            # the new host first, so the group never runs below `hosts`.
            instance_maintenance_policy=aws.autoscaling.GroupInstanceMaintenancePolicyArgs(
                min_healthy_percentage=MIN_HEALTHY_PERCENTAGE, max_healthy_percentage=MAX_HEALTHY_PERCENTAGE
            ),
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=MIN_HEALTHY_PERCENTAGE,
                    max_healthy_percentage=MAX_HEALTHY_PERCENTAGE,
                    instance_warmup=str(INSTANCE_WARMUP_SECONDS),
                    # A release whose hosts never become healthy is rolled back to the last template.
                    auto_rollback=True,
                ),
            ),
            tags=[aws.autoscaling.GroupTagArgs(key="Name", value=name, propagate_at_launch=True)],
            opts=child,
        )

        aws.iam.RolePolicy(
            f"{name}-restart-rotation",
            role=args.role_name,
            policy=pulumi.Output.from_input(args.target_group_arn).apply(rotation_policy),
            opts=child,
        )

        self.group_name = group.name
        self.register_outputs({"group_name": self.group_name})
