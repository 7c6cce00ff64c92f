"""Refusals that need to know what the account already holds, made before the first resource exists.

A Pulumi program is handed no record of its last deployment. Where a config change would make AWS
refuse an update half-way, the program asks AWS what this stack deployed before, by the `Project`
and `Stack` default tags and the resource's `Name` tag, and refuses the change with the fix. Two
stacks of one project and stack name in an account and region already collide on the RDS identifier,
so these tags name one stack's resources.

- vpcCidr: a new range means a new VPC, and RDS will not move its subnet group into another VPC.
- hostedZoneId: a record for the domain that does not point at this stack's Elastic IP, or (a fleet)
  alias this stack's load balancer, is not taken over (one that does is adopted: the README lets users
  create it by hand first, and a stack moving between one host and a fleet finds its own record).
"""

from __future__ import annotations

import re

import pulumi
import pulumi_aws as aws

# Record types that would keep Route 53 from creating an A record of the same name.
CONFLICTING_RECORD_TYPES = ("A", "CNAME")


class ChangeRefused(pulumi.RunError):
    """A config change AWS would refuse half-way; raised before any resource is registered."""


def vpc_name(name: str) -> str:
    return f"{name}-vpc"


def eip_name(name: str) -> str:
    return f"{name}-eip"


def load_balancer_name(name: str) -> str:
    return f"{name}-alb"


def stack_tags(project: str, stack: str, name_tag: str) -> dict[str, str]:
    return {"Project": project, "Stack": stack, "Name": name_tag}


def deployed_vpc_cidrs(tags: dict[str, str], opts: pulumi.InvokeOptions) -> list[str]:
    """The primary CIDR of every VPC carrying `tags` (none before the first `pulumi up`)."""
    ids = aws.ec2.get_vpcs(tags=tags, opts=opts).ids
    return [aws.ec2.get_vpc(id=vpc_id, opts=opts).cidr_block for vpc_id in sorted(ids)]


def deployed_public_ips(tags: dict[str, str], opts: pulumi.InvokeOptions) -> list[str]:
    """The addresses of the Elastic IPs carrying `tags` (none before the first `pulumi up`)."""
    return list(aws.ec2.get_eips(tags=tags, opts=opts).public_ips)


def deployed_load_balancer_dns_names(tags: dict[str, str], opts: pulumi.InvokeOptions) -> list[str]:
    """The DNS names of the load balancers carrying `tags` (a fleet's; none for a single host)."""
    found = aws.resourcegroupstaggingapi.get_resources(
        resource_type_filters=["elasticloadbalancing:loadbalancer"],
        tag_filters=[aws.resourcegroupstaggingapi.GetResourcesTagFilterArgs(key=key, values=[value])
                     for key, value in sorted(tags.items())],
        opts=opts,
    )
    arns = sorted(mapping.resource_arn for mapping in found.resource_tag_mapping_lists)
    return [record_name(aws.lb.get_load_balancer(arn=arn, opts=opts).dns_name) for arn in arns]


def alias_target(existing: aws.route53.outputs.GetRecordsResourceRecordSetResult) -> str:
    """The DNS name an alias record points at ("" for a plain record), as a load balancer reports it."""
    target = existing.alias_target
    name = record_name(target.dns_name) if target and target.dns_name else ""
    return name.removeprefix("dualstack.")


def vpc_cidr_change_refused(deployed: str, wanted: str) -> str:
    return (
        f"vpcCidr: this stack's VPC is {deployed} and the config asks for {wanted}. A new range means a new "
        "VPC, and RDS refuses to move the database's subnet group into another VPC, so the update would stop "
        f"half-way. Keep the range: pulumi config set vpcCidr {deployed}. To move to {wanted}, create a new "
        "stack with it and copy the data across (README, Safety: \"Another VPC range\"); nothing was changed"
    )


def record_name(name: str) -> str:
    """Route 53 answers names with a trailing dot, lower case, '*' as \\052."""
    return name.lower().rstrip(".").replace("\\052", "*")


def record_refused(
    existing: aws.route53.outputs.GetRecordsResourceRecordSetResult, domain: str, zone_id: str, stack_ips: list[str],
    stack_balancers: list[str] | None = None,
) -> str | None:
    """Why `existing` must not be taken over, or None when it is a plain A record of this stack's addresses
    or an alias of this stack's load balancer."""
    values = [record.value for record in existing.resource_records or []]
    if existing.type == "A" and values and not existing.set_identifier and set(values) <= set(stack_ips):
        return None
    target = alias_target(existing)
    if existing.type == "A" and target and not existing.set_identifier and target in (stack_balancers or []):
        return None
    shown = ", ".join(values) if values else (f"an alias of {target}" if target else "an alias or a routing policy")
    ours = f" ({', '.join(stack_ips)})" if stack_ips else ""
    return (
        f"hostedZoneId: zone {zone_id} already has a {existing.type} record for {domain} ({shown}) that does not "
        f"point at this stack's Elastic IP{ours}; the stack will not overwrite a record it does not own. Delete "
        "that record (or point it at the stack's public_ip) and run pulumi up again, or keep managing it "
        "yourself: pulumi config rm hostedZoneId; nothing was changed"
    )


def check_vpc_cidr(project: str, stack: str, vpc_cidr: str, opts: pulumi.InvokeOptions) -> None:
    for deployed in deployed_vpc_cidrs(stack_tags(project, stack, vpc_name(stack)), opts):
        if deployed != vpc_cidr:
            raise ChangeRefused(vpc_cidr_change_refused(deployed, vpc_cidr))


def check_domain_record(project: str, stack: str, domain: str, zone_id: str, opts: pulumi.InvokeOptions) -> None:
    stack_ips = deployed_public_ips(stack_tags(project, stack, eip_name(stack)), opts)
    found = aws.route53.get_records(zone_id=zone_id, name_regex=f"^{re.escape(domain)}\\.?$", opts=opts)
    for existing in found.resource_record_sets:
        if record_name(existing.name) == domain and existing.type in CONFLICTING_RECORD_TYPES:
            balancers = (deployed_load_balancer_dns_names(stack_tags(project, stack, load_balancer_name(stack)), opts)
                         if alias_target(existing) else [])
            reason = record_refused(existing, domain, zone_id, stack_ips, balancers)
            if reason:
                raise ChangeRefused(reason)


def refuse_unsafe_changes(
    *, project: str, stack: str, vpc_cidr: str, domain: str, hosted_zone_id: str, opts: pulumi.InvokeOptions
) -> None:
    check_vpc_cidr(project, stack, vpc_cidr, opts)
    if domain and hosted_zone_id:
        check_domain_record(project, stack, domain, hosted_zone_id, opts)
