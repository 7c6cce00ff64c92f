"""CrossGuard policy pack `mlflow-aws-guardrails`; every policy is mandatory.

    pulumi preview --stack dev --policy-pack policy
    pulumi preview --stack prod --policy-pack policy --policy-pack-config policy/protect-data.json

The `data-protection` policy holds every database and bucket the program tags as kept on destroy
(it does so for stacks whose `protectData` is true); the second form's `protectData` (default false)
holds every database and bucket of the stack to it, tagged or not. Tests never import this file:
PolicyPack() starts the analyzer's gRPC server and blocks; they use policies.py and rules.py, or run
this pack in a child process.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

try:
    from policy.policies import PACK_NAME, POLICIES
except ImportError:  # Pulumi runs the pack as a directory, with only that directory on sys.path
    from policies import PACK_NAME, POLICIES  # type: ignore[import-not-found, no-redef]

PolicyPack(PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
