"""PublicAddress: the Elastic IP, allocated before the host so its URL is known before it boots.

With a Route 53 zone, the A record for the domain points at it too, once the address serves: the record
takes `serving`, a value known only after the host behind the address reported healthy and the address
moved to it, so a stack going from a fleet back to one host moves its name only to a host that answers.
The README lets users create
that record by hand before they set `hostedZoneId`: a record that already points at this stack's
Elastic IP is adopted (the stack manages it from then on); any other record of that name is refused
before anything is created (components/preflight.py), since overwriting it would take the name from
whatever it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.ordering import ready_when
from components.preflight import eip_name

RECORD_TTL_SECONDS = 300
COMPONENT_TYPE = "mlflow-aws:network:PublicAddress"


def record_name(name: str) -> str:
    return f"{name}-a-record"


FLEET_COMPONENT_TYPE = "mlflow-aws:network:LoadBalancer"  # components/load_balancer.py
FLEET_RECORD_SUFFIX = "-alias"


def record_urn(stack: str, project: str, component_type: str, record: str) -> str:
    """The URN of a Route 53 record that is the child of a top-level component."""
    return f"urn:pulumi:{stack}::{project}::{component_type}$aws:route53/record:Record::{record}"


def fleet_record_urn(stack: str, project: str, name: str) -> str:
    """The fleet's record of the same name: a fleet going back to one host updates its alias into this
    A record instead of creating a second record of the name (which Route 53 refuses)."""
    return record_urn(stack, project, FLEET_COMPONENT_TYPE, f"{name}{FLEET_RECORD_SUFFIX}")


@dataclass
class PublicAddressArgs:
    # Resolves once a healthy host has the address (TrackingHost's association): the record waits for it.
    serving: pulumi.Input[str]
    domain: str = ""
    hosted_zone_id: str = ""


class PublicAddress(pulumi.ComponentResource):
    allocation_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]

    def __init__(self, name: str, args: PublicAddressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        eip = aws.ec2.Eip(f"{name}-eip", domain="vpc", tags={"Name": eip_name(name)}, opts=child)
        if args.domain and args.hosted_zone_id:
            aws.route53.Record(
                record_name(name),
                zone_id=args.hosted_zone_id,
                name=args.domain,
                type="A",
                ttl=RECORD_TTL_SECONDS,
                records=[ready_when(eip.public_ip, args.serving)],
                # Only ever a record the preflight checked: none, or one already pointing at this stack's address.
                allow_overwrite=True,
                opts=pulumi.ResourceOptions(
                    parent=self, aliases=[fleet_record_urn(pulumi.get_stack(), pulumi.get_project(), name)]
                ),
            )

        self.allocation_id = eip.allocation_id
        self.public_ip = eip.public_ip
        self.register_outputs({"allocation_id": self.allocation_id, "public_ip": self.public_ip})
