"""List and read S3 objects (Firehose deliveries, export task files).

Every failure that is not about one object's content (missing bucket, denied access,
unreachable endpoint, a connection cut while reading) raises :class:`SourceError` naming the
bucket and key: the run fails and can be retried, rather than recording good data as bad.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from cwl_pipeline.adapters.errors import SourceError, attempts_note
from cwl_pipeline.s3_objects.stored import StoredObject

# botocore retries a GetObject until its headers arrive; a body cut off after them is read again.
_BODY_ATTEMPTS = 3
_BODY_CUT = (IncompleteReadError, ReadTimeoutError, ResponseStreamingError)


class ObjectGone(SourceError):
    """The object was listed but no longer exists (deleted, or expired by a lifecycle rule)."""


class S3ObjectStore:
    """Lists and reads objects of S3 buckets."""

    def __init__(self, client: Any) -> None:
        """``client`` is a boto3 ``s3`` client (with its retry configuration)."""
        self._client = client

    @property
    def _where(self) -> str:
        return self._client.meta.endpoint_url

    def list_objects(
        self, bucket: str, prefix: str, start_after: str | None = None
    ) -> Iterator[StoredObject]:
        """Every object under ``prefix`` (after key ``start_after``), in key order."""
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after:
            request["StartAfter"] = start_after
        for page in self._pages(request, f"s3://{bucket}/{prefix}"):
            for item in page.get("Contents", []):
                yield _stored(item)

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        """Names of the "folders" right under ``prefix`` (which should end with ``/``)."""
        request = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        folders = []
        for page in self._pages(request, f"s3://{bucket}/{prefix}"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                if name:
                    folders.append(name)
        return folders

    def list_level(self, bucket: str, prefix: str) -> tuple[list[str], list[StoredObject]]:
        """One level under ``prefix`` (a ``/`` delimiter listing): the prefixes of its
        "folders" (each ending with ``/``), and the objects right under ``prefix``."""
        request = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        folders: list[str] = []
        objects: list[StoredObject] = []
        for page in self._pages(request, f"s3://{bucket}/{prefix}"):
            folders += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
            objects += [_stored(item) for item in page.get("Contents", [])]
        return folders, objects

    def read(self, bucket: str, key: str) -> bytes:
        """The whole content of one object.

        Raises:
            ObjectGone: the object no longer exists.
            SourceError: any other failure, naming the object.
        """
        uri = f"s3://{bucket}/{key}"
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                response = self._client.get_object(Bucket=bucket, Key=key)
                return response["Body"].read()
            except ClientError as exc:
                code = exc.response["Error"].get("Code")
                if code in ("NoSuchKey", "404"):
                    raise ObjectGone(f"{uri} no longer exists") from None
                raise self._client_error(exc, f"GetObject on {uri}", bucket) from None
            except EndpointConnectionError as exc:
                raise SourceError(f"S3 endpoint unreachable: {exc}") from None
            except _BODY_CUT as exc:
                if attempt == _BODY_ATTEMPTS:
                    raise SourceError(f"reading {uri} failed {attempt} times; the last time: {exc}") from None
            except BotoCoreError as exc:
                raise SourceError(f"reading {uri} failed: {exc}") from None
        raise AssertionError("unreachable")

    def _pages(self, request: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            yield from paginator.paginate(**request)
        except ClientError as exc:
            raise self._client_error(exc, f"ListObjectsV2 on {what}", request["Bucket"]) from None
        except EndpointConnectionError as exc:
            raise SourceError(f"S3 endpoint unreachable: {exc}") from None
        except BotoCoreError as exc:
            raise SourceError(f"listing {what} failed: {exc}") from None

    def _client_error(self, exc: ClientError, what: str, bucket: str) -> SourceError:
        code = exc.response["Error"].get("Code")
        if code == "NoSuchBucket":
            return SourceError(f"S3 bucket {bucket!r} does not exist ({self._where})")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return SourceError(f"S3 denied {what}: check s3:ListBucket / s3:GetObject on the bucket")
        return SourceError(
            f"{what} failed{attempts_note(exc)}: {code}: {exc.response['Error'].get('Message')}"
        )


def _stored(item: dict[str, Any]) -> StoredObject:
    """A ``Contents`` entry of a ListObjectsV2 page."""
    return StoredObject(
        key=item["Key"],
        etag=str(item.get("ETag", "")).strip('"'),
        size=int(item.get("Size", 0)),
        last_modified=item["LastModified"],
    )
