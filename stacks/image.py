"""Resolve the serving container image offline and grant pulling exactly that repository."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.region_info import FactName
from constructs import Construct

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")


@dataclass(frozen=True)
class ContainerImage:
    """An ECR image URI plus the repository ARN a role must be allowed to pull from."""

    image_uri: str
    repository_arn: str

    def pull_statements(self) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(actions=list(PULL_ACTIONS), resources=[self.repository_arn]),
            # GetAuthorizationToken is account-wide by design and accepts no resource ARN.
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        ]


def resolve_image(scope: Construct, uri: str | None, repository: str, tag: str) -> ContainerImage:
    """Use ``uri`` when given; otherwise the AWS Deep Learning Container ``repository:tag`` of the stack's region.

    The DLC account differs per region; CDK's region facts give it offline (a CloudFormation mapping when the
    stack is environment-agnostic), so no account id is hard-coded here.
    """
    stack = Stack.of(scope)
    if uri:
        registry, _, rest = uri.partition("/")
        # <account>.dkr.ecr.<region>.amazonaws.com[.cn]
        account, _dkr, _ecr, region = registry.split(".")[:4]
        repo = rest.split("@")[0].split(":")[0]
        return ContainerImage(
            image_uri=uri,
            repository_arn=f"arn:{Aws.PARTITION}:ecr:{region}:{account}:repository/{repo}",
        )
    account = stack.regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
    return ContainerImage(
        image_uri=f"{account}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{repository}:{tag}",
        repository_arn=f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{account}:repository/{repository}",
    )
