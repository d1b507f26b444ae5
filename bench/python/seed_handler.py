"""The download-url route written the seed article's way, for the cold-start and warm comparison.

boto3 clients are made once at init, as the article (and every Lambda guide) does; each request is
one consistent get_item for the caller's record, then generate_presigned_url with the same
response overrides the Rust function signs. Run by awslambdaric against the same DynamoDB
stand-in, record and event as the Rust function (see bench/lambda-emulator). Bench only.
"""

import datetime
import json
import os

import boto3
from botocore.config import Config

TABLE = os.environ["FILES_TABLE"]
BUCKET = os.environ["FILES_BUCKET"]
EXPIRES_IN = 300

# SigV4, as the Rust function signs: left to itself, botocore presigns with the legacy SigV2 in
# us-east-1, which newer regions refuse and which cannot sign checksums.
s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
dynamodb = boto3.client("dynamodb")


def _answer(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(body),
    }


def handler(event, context):
    sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    file_id = event["rawPath"].split("/")[2]
    item = dynamodb.get_item(
        TableName=TABLE,
        Key={"owner": {"S": sub}, "fileId": {"S": file_id}},
        ConsistentRead=True,
    ).get("Item")
    if item is None:
        return _answer(404, {"error": {"code": "not_found"}})
    if item["status"]["S"] != "available":
        return _answer(409, {"error": {"code": "not_ready"}})
    filename = item["filename"]["S"]
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": BUCKET,
            "Key": item["objectKey"]["S"],
            "ResponseContentType": item["contentType"]["S"],
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        },
        ExpiresIn=EXPIRES_IN,
    )
    expires_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=EXPIRES_IN
    )
    return _answer(
        200,
        {"method": "GET", "url": url, "expiresAt": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
