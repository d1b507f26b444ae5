"""moto's DynamoDB served with HTTP/1.1 keep-alive, for the Lambda harness (`make bench`).

`moto_server` runs on Werkzeug's development server, which closes the connection after every
response. Real DynamoDB keeps it open, and both the Rust SDK and boto3 reuse it, so a warm
invocation measured against `moto_server` would pay a TCP connect and close that it never pays in
Lambda. The same moto application behind waitress keeps connections open.

Usage: python dynamodb_standin.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from waitress import serve


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    # One worker thread: requests from the one function under test arrive one at a time.
    serve(DomainDispatcherApplication(create_backend_app), host=host, port=port, threads=1, _quiet=True)


if __name__ == "__main__":
    main()
