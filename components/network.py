"""Network: a VPC with one public subnet for the host and two private subnets (distinct AZs) for RDS.

Security groups: `web` admits 80/443 from allowedCidrs only and 22 only from sshCidrs; `database`
admits 5432 only from the web group. Behind a load balancer (`load_balanced`, hosts >= 2), a second
public subnet takes the spare quarter of the VPC, an `alb` group admits 80/443 from allowedCidrs, and
`web`, the hosts' group, admits only port 80 from the `alb` group. Nothing opens 5000 (MLflow listens on
127.0.0.1) or 5432 to the world. Rules are separate `vpc.SecurityGroup*Rule` resources, one per CIDR and port.

The public subnet sits in the first zone that offers the host's instance type (a fleet's second one in the
next such zone); the private subnets in the first two zones. The VPC's range is fixed for the life of a
stack: RDS cannot follow its subnets into a new VPC, so a changed `vpcCidr` is refused before anything is
created (components/preflight.py, run before this component). With `protect_data`, the VPC, the private
subnets and the database's security group are protected like the database itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.ordering import ready_after
from components.preflight import ChangeRefused, vpc_name

WEB_PORTS = (80, 443)
HTTP_PORT = 80
SSH_PORT = 22
POSTGRES_PORT = 5432
PRIVATE_SUBNET_COUNT = 2
WEB_GROUP_DESCRIPTION = "MLflow hosts: web traffic (from allowedCidrs, or from the load balancer)"


@dataclass
class NetworkArgs:
    vpc_cidr: str
    allowed_cidrs: tuple[str, ...]
    instance_type: str  # the host's: its subnet must be in a zone that offers it
    ssh_cidrs: tuple[str, ...] = ()
    protect_data: bool = False
    load_balanced: bool = False


def _cidr_label(cidr: str) -> str:
    """203.0.113.0/24 -> 203.0.113.0-24, for resource names."""
    return cidr.replace("/", "-")


def split_vpc(vpc_cidr: str) -> tuple[str, list[str]]:
    """The public subnet and the private subnets: the first three quarters of the VPC."""
    quarters = [str(net) for net in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2)]
    return quarters[0], quarters[1 : 1 + PRIVATE_SUBNET_COUNT]


def host_zone(instance_type: str, zones: list[str], offered: list[str], *, not_in: tuple[str, ...] = ()) -> str:
    """The first of `zones` (other than `not_in`) where EC2 offers `instance_type`."""
    for zone in zones:
        if zone in offered and zone not in not_in:
            return zone
    if not_in:
        raise ChangeRefused(
            f"instanceType: {instance_type} is offered in only one availability zone of the region "
            f"({', '.join(not_in)}), and a fleet (hosts >= 2) spreads its hosts over two; choose a type "
            "offered in two zones, or hosts: 1"
        )
    raise ChangeRefused(
        f"instanceType: {instance_type} is not offered in any availability zone this account can use in the "
        f"region ({', '.join(zones)}); choose another type, e.g. one listed by: aws ec2 "
        f"describe-instance-type-offerings --location-type availability-zone --filters Name=location,Values={zones[0]}"
    )


def spare_quarter(vpc_cidr: str) -> str:
    """The last quarter of the VPC, which split_vpc leaves free: the fleet's second public subnet."""
    return str(list(ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2))[-1])


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    alb_security_group_id: pulumi.Output[str] | None
    private_subnet_ids: list[pulumi.Output[str]]
    web_security_group_id: pulumi.Output[str]
    db_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # What the database cannot live without: replacing or deleting these takes it down with them.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect_data)
        invoke = pulumi.InvokeOptions(parent=self)

        # The checks come before the first resource: a refused config changes nothing in the account.
        zones = aws.get_availability_zones(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=invoke,
        ).names
        if len(zones) < PRIVATE_SUBNET_COUNT:
            raise pulumi.RunError(
                f"the region offers {len(zones)} availability zone(s); RDS needs subnets in {PRIVATE_SUBNET_COUNT}"
            )
        offered = aws.ec2.get_instance_type_offerings(
            location_type="availability-zone",
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[args.instance_type])],
            opts=invoke,
        ).locations
        public_zone = host_zone(args.instance_type, list(zones), list(offered))
        public_cidr, private_cidrs = split_vpc(args.vpc_cidr)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": vpc_name(name)},
            opts=kept,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)

        # Hosts ask for their own public address in the launch template (components/launch_shape.py); the
        # subnet gives none to anything else launched in it.
        public_subnet = aws.ec2.Subnet(
            f"{name}-public",
            vpc_id=vpc.id,
            cidr_block=public_cidr,
            availability_zone=public_zone,
            map_public_ip_on_launch=False,
            tags={"Name": f"{name}-public"},
            # A new zone (an instanceType the old one lacks) means a new subnet with the same range, which
            # AWS refuses while the old one exists: the one change that replaces the host old-first (the
            # host is in the subnet), so the server is down while the new host boots.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        public_routes = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, opts=child)
        default_route = aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_routes.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=gateway.id,
            opts=child,
        )
        public_association = aws.ec2.RouteTableAssociation(
            f"{name}-public-rta", subnet_id=public_subnet.id, route_table_id=public_routes.id, opts=child
        )

        # Private subnets have no route to the internet: only the database lives there.
        private_routes = aws.ec2.RouteTable(f"{name}-private-rt", vpc_id=vpc.id, opts=child)
        private_subnets = []
        for index, (cidr, zone) in enumerate(zip(private_cidrs, zones, strict=False)):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{index}"},
                opts=kept,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta", subnet_id=subnet.id, route_table_id=private_routes.id, opts=child
            )
            private_subnets.append(subnet)

        public_subnets = [public_subnet]
        if args.load_balanced:
            # An Application Load Balancer needs subnets in two AZs, and so does a fleet that survives one.
            second_public = aws.ec2.Subnet(
                f"{name}-public-1",
                vpc_id=vpc.id,
                cidr_block=spare_quarter(args.vpc_cidr),
                availability_zone=host_zone(args.instance_type, list(zones), list(offered), not_in=(public_zone,)),
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-1"},
                opts=child,
            )
            second_association = aws.ec2.RouteTableAssociation(
                f"{name}-public-1-rta", subnet_id=second_public.id, route_table_id=public_routes.id, opts=child
            )
            public_subnets.append(second_public)

        # One group for the hosts of either shape, so that `hosts` 1 <-> 2 keeps it, and with it the
        # database's rule that admits it: the hosts still serving keep reaching the database throughout.
        # AWS cannot change a group's description (the provider replaces the group), so it says nothing
        # shape-specific, and a group created with an earlier, shape-specific one keeps it.
        web = aws.ec2.SecurityGroup(
            f"{name}-web", vpc_id=vpc.id, description=WEB_GROUP_DESCRIPTION,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["description"]),
        )
        rules: list[pulumi.CustomResource] = []
        alb = self._load_balancer_group(name, args, vpc.id, web.id, child) if args.load_balanced else None
        if alb is not None:
            rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-web-80-from-alb",
                security_group_id=web.id,
                ip_protocol="tcp",
                from_port=HTTP_PORT,
                to_port=HTTP_PORT,
                referenced_security_group_id=alb.id,
                description="HTTP from the load balancer",
                opts=child,
            ))
        # Rules are named by what they admit, not by list position: removing a CIDR from the list
        # then deletes its rules instead of rewriting every later one into a duplicate of the next.
        for port in () if args.load_balanced else WEB_PORTS:
            for cidr in args.allowed_cidrs:
                rules.append(aws.vpc.SecurityGroupIngressRule(
                    f"{name}-web-{port}-{_cidr_label(cidr)}",
                    security_group_id=web.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    description=f"port {port} from allowedCidrs",
                    opts=child,
                ))
        for cidr in args.ssh_cidrs:
            rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-ssh-{_cidr_label(cidr)}",
                security_group_id=web.id,
                ip_protocol="tcp",
                from_port=SSH_PORT,
                to_port=SSH_PORT,
                cidr_ipv4=cidr,
                description="SSH from sshCidrs",
                opts=child,
            ))
        # The host installs packages, reaches SSM, S3 and the ACME server: it needs outbound access
        # (the provider removes the allow-all egress rule AWS gives every new group).
        rules.append(aws.vpc.SecurityGroupEgressRule(
            f"{name}-web-egress",
            security_group_id=web.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="outbound: packages, SSM, S3, ACME",
            opts=child,
        ))

        database = aws.ec2.SecurityGroup(
            f"{name}-db", vpc_id=vpc.id, description="RDS PostgreSQL: 5432 from the MLflow host only", opts=kept
        )
        # The same rule in both shapes (one hosts' group): going from one host to a fleet or back never
        # moves the database's door away from the hosts that still serve.
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-db-from-web",
            security_group_id=database.id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            referenced_security_group_id=web.id,
            description="PostgreSQL from the MLflow host",
            opts=child,
        )

        self.vpc_id = vpc.id
        # Whatever takes the public subnet waits for its route to the internet: AWS refuses to associate
        # an Elastic IP in a VPC without an attached gateway (Gateway.NotAttached), and a host booted
        # before the route exists fails its first apt-get.
        self.public_subnet_id = ready_after(public_subnet.id, default_route, public_association)
        self.public_subnet_ids = [self.public_subnet_id]
        if args.load_balanced:
            self.public_subnet_ids.append(ready_after(second_public.id, default_route, second_association))
        self.alb_security_group_id = alb.id if alb is not None else None
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]
        # The host's group is ready once its rules are: a host booted before the egress rule exists
        # has no way out for its first apt-get.
        self.web_security_group_id = ready_after(web.id, *rules)
        self.db_security_group_id = database.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_id": self.public_subnet_id,
                **({"public_subnet_ids": self.public_subnet_ids, "alb_security_group_id": self.alb_security_group_id}
                   if args.load_balanced else {}),
                "private_subnet_ids": self.private_subnet_ids,
                "web_security_group_id": self.web_security_group_id,
                "db_security_group_id": self.db_security_group_id,
            }
        )

    def _load_balancer_group(
        self, name: str, args: NetworkArgs, vpc_id: pulumi.Output[str], hosts_group_id: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.SecurityGroup:
        """The load balancer's group: 80/443 from allowedCidrs in, port 80 to the hosts' group out."""
        alb = aws.ec2.SecurityGroup(
            f"{name}-alb", vpc_id=vpc_id, description="MLflow load balancer: HTTP/HTTPS from allowedCidrs",
            opts=child,
        )
        for port in WEB_PORTS:
            for cidr in args.allowed_cidrs:
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-{port}-{_cidr_label(cidr)}",
                    security_group_id=alb.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    description=f"port {port} from allowedCidrs",
                    opts=child,
                )
        # Requests and health checks go to the hosts' nginx; nothing else leaves the load balancer.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-hosts",
            security_group_id=alb.id,
            ip_protocol="tcp",
            from_port=HTTP_PORT,
            to_port=HTTP_PORT,
            referenced_security_group_id=hosts_group_id,
            description="HTTP to the MLflow hosts",
            opts=child,
        )
        return alb
