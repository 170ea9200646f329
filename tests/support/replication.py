"""S3 replication from one bucket to another, as the test sees it: objects copied with their user metadata, content
type and checksum, deletes replicated as delete markers, and the events the destination bucket emits for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.aws import Moto
from tests.support.handler_env import PREFIX, Change, Sequencer, bucket_listing


@dataclass
class Replication:
    """Copies `source` to `destination` (both versioned) when run, collecting the destination's events."""

    moto: Moto
    source: str
    destination: str
    sequencer: Sequencer = field(default_factory=Sequencer)
    pending: list[Change] = field(default_factory=list)  # events the destination emitted, not yet delivered

    def run(self) -> None:
        """Replicate every change made to the source since the last run."""
        s3 = self.moto.client("s3")
        here = bucket_listing(self.moto, self.source, PREFIX)
        there = bucket_listing(self.moto, self.destination, PREFIX)
        for key, etag in sorted(here.items()):
            if there.get(key) == etag:
                continue
            head = s3.head_object(Bucket=self.source, Key=key, ChecksumMode="ENABLED")
            # Replication keeps the object's checksum as well as its user metadata and content type.
            extra = {"ChecksumAlgorithm": "SHA256"} if head.get("ChecksumSHA256") else {}
            s3.copy_object(
                Bucket=self.destination,
                Key=key,
                CopySource={"Bucket": self.source, "Key": key},
                MetadataDirective="COPY",
                **extra,
            )
            copied = s3.head_object(Bucket=self.destination, Key=key)
            assert copied.get("Metadata", {}) == head.get("Metadata", {}), f"{key}: user metadata not replicated"
            assert copied.get("ContentType") == head.get("ContentType"), f"{key}: content type not replicated"
            self.pending.append(Change(self.destination, key, "ObjectCreated:Put", self.sequencer()))
        for key in sorted(there.keys() - here.keys()):
            # A delete in a versioned bucket leaves a delete marker, and S3 says so.
            s3.delete_object(Bucket=self.destination, Key=key)
            self.pending.append(Change(self.destination, key, "ObjectRemoved:DeleteMarkerCreated", self.sequencer()))

    def take(self) -> list[Change]:
        """The events emitted so far (each once), handed over for delivery."""
        taken, self.pending = self.pending, []
        return taken
