"""deploy/aws/pypicloud-lite.yaml on moto's CloudFormation: the template read with its short tags, the variant moto
can create (its unsupported resources replaced by stand-ins), and the bucket properties moto's CloudFormation skips."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.aws import Moto
from tests.support.data import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "aws" / "pypicloud-lite.yaml"
ACCOUNT = "123456789012"  # moto's
# The properties of AWS::S3::Bucket that moto's CloudFormation creates (the others it silently skips).
MOTO_BUCKET_PROPERTIES = frozenset({"BucketName", "BucketEncryption", "Tags"})


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: !Ref X is {"Ref": X}, !GetAtt A.B is {"Fn::GetAtt": [A, B]}."""


def _tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    return template


def moto_resource_types() -> frozenset[str]:
    """The resource types moto's CloudFormation creates (the server runs in this process, with these models)."""
    from moto.cloudformation.parsing import get_model_map

    return frozenset(get_model_map())


@dataclass(frozen=True)
class Variant:
    template: dict[str, Any]
    removed: dict[str, str]  # logical id -> type, of the resources moto cannot create


def moto_variant(template: dict[str, Any], standins: dict[str, dict[str, str]]) -> Variant:
    """The template without the resources moto cannot create; every Ref, GetAtt and ${} of one of them becomes its
    stand-in's value (`standins[logical id]["Ref"]` or `[attribute]`), and DependsOn forgets them."""
    supported = moto_resource_types()
    removed = {
        name: resource["Type"] for name, resource in template["Resources"].items() if resource["Type"] not in supported
    }

    def standin(name: str, attribute: str) -> str:
        if name not in standins or attribute not in standins[name]:
            raise AssertionError(f"the test has no stand-in for {name}.{attribute} ({removed[name]}, not on moto)")
        return standins[name][attribute]

    def sub(text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, _, attribute = match.group(1).partition(".")
            return standin(name, attribute or "Ref") if name in removed else match.group(0)

        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", replace, text)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in removed:
            return standin(node["Ref"], "Ref")
        if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in removed:
            return standin(*node["Fn::GetAtt"])
        if set(node) == {"Fn::Sub"}:
            value = node["Fn::Sub"]
            return {"Fn::Sub": sub(value) if isinstance(value, str) else [sub(value[0]), walk(value[1])]}
        return {key: walk(value) for key, value in node.items()}

    kept: dict[str, Any] = {}
    for name, original in template["Resources"].items():
        if name in removed:
            continue
        resource = walk(original)
        depends = resource.get("DependsOn")
        if depends is not None:
            depends = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in removed]
            if depends:
                resource["DependsOn"] = depends
            else:
                del resource["DependsOn"]
        kept[name] = resource
    variant = {**template, "Resources": kept, "Outputs": walk(template.get("Outputs", {}))}
    return Variant(variant, removed)


def deploy(moto: Moto, region: str, name: str, variant: Variant, parameters: dict[str, str]) -> dict[str, str]:
    """Create the stack (moto creates it before answering); its outputs."""
    cfn = moto.client("cloudformation", region)
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(variant.template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def resolved_properties(region: str, stack_name: str, logical_id: str) -> dict[str, Any]:
    """A resource's properties as moto's CloudFormation resolved them (Refs, GetAtts, Subs, Ifs, NoValue)."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json

    backend = cloudformation_backends[ACCOUNT][region]
    stack = next(s for s in backend.stacks.values() if s.name == stack_name and s.status == "CREATE_COMPLETE")
    raw = stack.template_dict["Resources"][logical_id].get("Properties", {})
    properties: dict[str, Any] = clean_json(raw, stack.resource_map)
    return properties


def apply_skipped_bucket_properties(moto: Moto, region: str, properties: dict[str, Any]) -> list[str]:
    """Put the bucket properties moto's CloudFormation skipped, through the S3 API, as CloudFormation would;
    the names of those put. Any property this does not know fails the test (so none is silently unchecked)."""
    s3, bucket = moto.client("s3", region), properties["BucketName"]
    applied = []
    for key, value in properties.items():
        if key in MOTO_BUCKET_PROPERTIES:
            continue
        if key == "VersioningConfiguration":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=value)
        elif key == "PublicAccessBlockConfiguration":
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=value)
        elif key == "OwnershipControls":
            s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=value)
        elif key == "NotificationConfiguration":
            queues = [
                {
                    "Id": f"cfn-{n}",
                    "QueueArn": entry["Queue"],
                    "Events": [entry["Event"]],
                    "Filter": {"Key": {"FilterRules": entry["Filter"]["S3Key"]["Rules"]}},
                }
                for n, entry in enumerate(value["QueueConfigurations"])
            ]
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues}
            )
        elif key == "ReplicationConfiguration":
            rules = [{"ID": r["Id"], **{k: v for k, v in r.items() if k != "Id"}} for r in value["Rules"]]
            s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={"Role": value["Role"], "Rules": rules})
        else:
            raise AssertionError(f"the test does not know how to check the bucket's {key} on moto")
        applied.append(key)
    return applied
